"""Read a series file: the time column parsed (ISO dates, `YYYY/MM/DD HH:MM`, compact integers such as
19580329, or `time_format=`), the target and covariates as numbers, one code per series.

Nothing is fixed here: rows whose time does not parse are counted and left out (the audit lists them),
and a column that is not there fails with the nearest names. The user's file is only ever read.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kiln.errors import DataError, received
from kiln.tasks.table.source import missing_mask, read_table

SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".parquet", ".pq")
# tried in order when time_format is not given; the first that parses (nearly) every cell wins
FORMATS = ("ISO8601", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%m/%d/%Y",
           "%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y%m")
COMPACT = {8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S", 6: "%Y%m"}


@dataclass
class SeriesFrame:
    """Parsed rows: `time` (datetime64), `series` (str), `y` and covariate columns (float, NaN when missing)."""

    frame: pd.DataFrame
    path: str
    time_format: str
    unparsed: pd.DataFrame  # rows whose time did not parse: row number and the cell
    covariates: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)


def find(frame: pd.DataFrame, name: str | None, key: str, component: str, what: str) -> str:
    """`name` when the file has it; else one line with the nearest column names."""
    cols = [str(c) for c in frame.columns]
    if name is None:
        raise DataError(received(component, key, "<unset>", f"a series file needs the {what} column named",
                                 f"Pass {key}=COLUMN (columns: {', '.join(cols[:12])})"))
    if name in cols:
        return name
    low = {c.lower(): c for c in cols}
    if str(name).lower() in low:
        return low[str(name).lower()]
    near = difflib.get_close_matches(str(name), cols, n=3, cutoff=0.3)
    hint = f"Did you mean {' or '.join(near)}?" if near else f"Columns: {', '.join(cols[:12])}"
    raise DataError(received(component, key, name, "the file has no such column", hint))


def parse_times(cells: pd.Series, time_format: str | None, component: str, column: str) -> tuple[pd.Series, str]:
    """(datetime64 values, NaT where a cell does not parse; the format used). Fails when almost nothing parses."""
    text = cells.astype(object).where(~pd.Series(missing_mask(cells), index=cells.index), None)
    text = text.map(lambda v: None if v is None else str(v).strip())
    present = text.notna()
    if not present.any():
        raise DataError(received(component, "time", column, "the column holds no values", "Pass time= the timestamp column"))
    candidates = [time_format] if time_format else _candidates(text[present])
    best, best_fmt = None, None
    for fmt in candidates:
        try:
            parsed = pd.to_datetime(text, format=fmt, errors="coerce") if fmt != "ISO8601" else \
                pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True).dt.tz_localize(None)
        except (ValueError, TypeError, OverflowError):
            continue
        if best is None or parsed.notna().sum() > best.notna().sum():
            best, best_fmt = parsed, fmt
        if best.notna().sum() == present.sum():
            break
    ok = 0 if best is None else int(best.notna().sum())
    if ok < 0.5 * int(present.sum()):
        example = text[present].iloc[0] if best is None else text[present & best.isna()].iloc[0]
        fix = f"Pass time_format= (e.g. time_format=%d.%m.%Y %H:%M)" if not time_format else "Check time_format= against the file"
        raise DataError(received(component, "time", column, f"{int(present.sum()) - ok} of {int(present.sum())} cells do not parse as "
                                 f"timestamps (e.g. {example!r})", fix))
    return best.astype("datetime64[ns]"), best_fmt


def _candidates(text: pd.Series) -> list[str]:
    sample = text.iloc[: 200]
    if sample.str.fullmatch(r"\d+").all():
        n = sample.str.len().mode().iloc[0]
        return [COMPACT[n]] if n in COMPACT else []
    return list(FORMATS)


def numbers(cells: pd.Series, key: str, column: str, component: str) -> np.ndarray:
    """Float values (NaN where missing); a cell that is neither missing nor a number fails in one line."""
    missing = missing_mask(cells)
    values = pd.to_numeric(cells.astype(object).where(~missing, None), errors="coerce").to_numpy(np.float64)
    bad = np.isnan(values) & ~missing
    if bad.any():
        first = cells.iloc[int(np.argmax(bad))]
        raise DataError(received(component, key, column, f"{int(bad.sum())} cells are not numbers (e.g. {first!r}); "
                                 "a forecast target and covariates must be numeric", "Pick a numeric column, or clean the file"))
    return values


def read_series(path, time: str | None, target: str | None, series: str | None = None, covariates=(), time_format=None,
                component: str = "train") -> SeriesFrame:
    """Read and parse `path`; rows are kept in file order (the audit says whether it was sorted)."""
    src = read_table(path, component)
    frame = src.frame
    tcol = find(frame, time, "time", component, "timestamp")
    ycol = find(frame, target, "target", component, "target")
    scol = find(frame, series, "series", component, "series id") if series else None
    ccols = [find(frame, c, "covariates", component, "covariate") for c in covariates]
    for c in ccols:
        if c in (tcol, ycol):
            raise DataError(received(component, "covariates", c, "the time and target columns cannot be covariates", "Leave it out of covariates="))
    times, fmt = parse_times(frame[tcol], time_format, component, tcol)
    out = pd.DataFrame({"time": times.to_numpy(), "series": frame[scol].astype(str).to_numpy() if scol else "0",
                        "y": numbers(frame[ycol], "target", ycol, component)})
    for c in ccols:
        out[c] = numbers(frame[c], "covariates", c, component)
    out["row"] = np.arange(len(out))
    bad = out["time"].isna().to_numpy()
    unparsed = pd.DataFrame({"row": np.flatnonzero(bad), "cell": frame[tcol].to_numpy()[bad]})
    facts = {**src.describe(), "time": tcol, "target": ycol, "series_column": scol, "time_format": fmt}
    return SeriesFrame(out[~bad].reset_index(drop=True), str(path), fmt, unparsed, ccols, facts)


__all__ = ["SUFFIXES", "SeriesFrame", "find", "numbers", "parse_times", "read_series"]
