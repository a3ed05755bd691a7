"""What each column holds: its kind, parsed values and the facts the audit and the model need.

Kinds (stable names): number, integer, boolean, category, datetime, text, identifier. A column of
numbers with a few stray strings is still a number column (the strays count as missing and the audit
says so); so is a date column stored as text a datetime column.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kiln.tasks.common.tabular import missing_mask

KINDS = ("number", "integer", "boolean", "category", "datetime", "text", "identifier")
BOOL_WORDS = {"true": 1, "false": 0, "yes": 1, "no": 0, "t": 1, "f": 0, "y": 1, "n": 0}
MOSTLY = 0.9  # share of parsed cells from which a column counts as numbers / dates with strays
ID_NAME = re.compile(r"(^|_|\b)(id|uuid|guid|key|index)$|^id(_|$)", re.IGNORECASE)
TEXT_WORDS = 4  # median words per cell from which a high-cardinality string column is free text


@dataclass
class Column:
    name: str
    kind: str
    missing: np.ndarray  # bool (N,): no value in the cell (strays in a number/date column included)
    numbers: np.ndarray | None = None  # float64 (N,) with NaN: number, integer, boolean (0/1)
    days: np.ndarray | None = None  # float64 (N,) days since 1970-01-01 with NaN: datetime
    strays: int = 0  # non-missing cells that did not parse as the column's kind
    stray_examples: list = field(default_factory=list)
    unique: int = 0
    top_share: float = 0.0  # share of non-missing cells holding the most common value
    date_format: str | None = None

    @property
    def present(self) -> int:
        return int((~self.missing).sum())


def parse_numbers(values: pd.Series) -> np.ndarray:
    """Numbers in cells as float64, NaN where the cell is not a number (thousand separators refused)."""
    return pd.to_numeric(values.astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)


def parse_days(values: pd.Series, date_format: str | None = None) -> np.ndarray:
    """Dates in cells as float days since 1970-01-01 (fractions carry the time of day), NaN if unparsable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = pd.to_datetime(values.astype(str).str.strip(), errors="coerce", format=date_format or "mixed")
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert(None)
    ns = ts.to_numpy(dtype="datetime64[ns]").astype("int64").astype(np.float64)
    ns[ts.isna().to_numpy()] = np.nan
    return ns / 86_400e9


def _date_format(sample: pd.Series) -> str | None:
    """The one strptime format pandas guesses for the first cells, if any (fast, consistent parsing)."""
    from pandas.tseries.api import guess_datetime_format

    guesses = {guess_datetime_format(str(v).strip()) for v in sample[:20]}
    return guesses.pop() if len(guesses) == 1 and None not in guesses else None


def infer_column(name: str, values: pd.Series, kind: str | None = None) -> Column:
    """Infer a column's kind (or take `kind`) and parse it."""
    miss = missing_mask(values)
    text = values.astype(object).where(~miss, None)
    present = text[~miss].astype(str).str.strip()
    n = len(present)
    uniq = present.nunique()
    top = float(present.value_counts().iloc[0] / n) if n else 0.0
    col = Column(name, "category", miss.copy(), unique=int(uniq), top_share=top)
    if n == 0:
        return col
    nums = parse_numbers(text.where(~miss, "nan"))
    num_ok = np.isfinite(nums) & ~miss
    low = present.str.lower()
    if kind is None:
        if set(low.unique()) <= set(BOOL_WORDS) and uniq <= 2 and not num_ok.any() or (
                num_ok.sum() == n and set(np.unique(nums[num_ok])) <= {0.0, 1.0} and uniq == 2):
            kind = "boolean"
        elif num_ok.sum() >= MOSTLY * n:
            whole = np.all(nums[num_ok] == np.round(nums[num_ok]))
            kind = "integer" if whole else "number"
            if whole and uniq >= 0.98 * n and n >= 20 and (ID_NAME.search(name) or _consecutive(nums[num_ok])):
                kind = "identifier"
        else:
            sample = present.iloc[:200]
            if sample.str.contains(r"\d").mean() >= MOSTLY and np.isfinite(parse_days(sample)).mean() >= MOSTLY \
                    and sample.str.len().min() >= 6:
                kind = "datetime"
            elif uniq >= 0.98 * n and n >= 20 and (ID_NAME.search(name) or present.str.len().nunique() <= 2):
                kind = "identifier"
            elif uniq > max(20, 0.5 * n) and present.str.split().str.len().median() >= TEXT_WORDS:
                kind = "text"
            else:
                kind = "category"
    col.kind = kind
    if kind in ("number", "integer"):
        bad = ~miss & ~num_ok
        col.strays, col.stray_examples = int(bad.sum()), sorted(set(text[bad].astype(str)))[:5]
        col.numbers, col.missing = np.where(num_ok, nums, np.nan), miss | bad
    elif kind == "boolean":
        col.numbers = np.where(num_ok, nums, low.reindex(values.index).map(BOOL_WORDS).to_numpy(dtype=np.float64))
        col.missing = miss | ~np.isfinite(col.numbers)
    elif kind == "datetime":
        col.date_format = _date_format(present)
        days = parse_days(text.where(~miss, ""), col.date_format)
        if col.date_format and np.isfinite(days).sum() < MOSTLY * n:  # the guess fits only the first cells
            col.date_format, days = None, parse_days(text.where(~miss, ""))
        bad = ~miss & ~np.isfinite(days)
        col.strays, col.stray_examples = int(bad.sum()), sorted(set(text[bad].astype(str)))[:5]
        col.days, col.missing = days, miss | bad
    return col


def _consecutive(x: np.ndarray) -> bool:
    """Integers that are all distinct and span about their count: a row number, not a measurement."""
    return len(x) > 0 and (x.max() - x.min() + 1) <= 1.1 * len(x)


def infer_columns(frame: pd.DataFrame, kinds: dict[str, str] | None = None) -> dict[str, Column]:
    kinds = kinds or {}
    return {c: infer_column(c, frame[c], kinds.get(c)) for c in frame.columns}


def category_values(values: pd.Series, missing: np.ndarray) -> np.ndarray:
    """Category cells as stripped strings, '' where missing: the form the model's VocabLookup reads."""
    s = values.astype(object).where(~missing, "").astype(str).str.strip()
    return s.where(~missing, "").to_numpy(dtype=object)


__all__ = ["KINDS", "Column", "category_values", "infer_column", "infer_columns", "parse_days", "parse_numbers"]
