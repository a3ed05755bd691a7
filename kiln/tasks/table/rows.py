"""Served rows -> the signature's inputs, for a micro-batch of a few rows: the same values `encode_rows`
gives (kiln/tasks/table/spec.py), without its per-column pandas inference.

`encode_rows` infers and parses each column with pandas, about 10 ms a column whatever the row count:
right for a file, but on a 30-column table it is ~0.3 s for every model call a server makes. Here
each cell is read by the rules `infer_column` applies for the column's known kind (missing spellings,
numbers, boolean words, stripped categories; dates through the same `parse_days`). A feature of any
other kind or encoding sends the batch to `encode_rows`, and tests/tasks/table/test_serve.py checks
both give the same arrays.
"""

from __future__ import annotations

import math

import numpy as np

NUMBER_KINDS = ("number", "integer", "boolean")


def _missing(cell: str, missing: frozenset) -> bool:
    return cell.strip().lower() in missing


def _number(cell: str) -> float:
    """What `pd.to_numeric(errors="coerce")` makes of a stripped cell, NaN unless finite."""
    s = cell.strip()
    if not s.isascii() or "_" in s:
        return math.nan
    try:
        v = float(s)
    except ValueError:
        return math.nan
    return v if math.isfinite(v) else math.nan


def fast_encodable(spec) -> bool:
    return all((f.encoding == "numeric" and f.kind in NUMBER_KINDS) or (f.encoding == "datetime" and f.kind == "datetime")
               or (f.encoding == "category" and f.kind not in NUMBER_KINDS + ("datetime",)) for f in spec.used)


def encode_cells(rows: list[dict], spec) -> dict[str, np.ndarray]:
    """Rows of text cells ('' for missing), keyed by column -> input name -> (N, 1) float32 or object strings."""
    import pandas as pd

    from kiln.tasks.table.columns import BOOL_WORDS, parse_days
    from kiln.tasks.common.tabular import MISSING

    out = {}
    for f in spec.used:
        cells = [str(r[f.column]) for r in rows]
        if f.encoding == "category":
            out[f.input] = np.array([[("" if _missing(c, MISSING) else c.strip())] for c in cells], dtype=object).reshape(-1, 1)
        elif f.encoding == "numeric":
            values = []
            for c in cells:
                if _missing(c, MISSING):
                    values.append(math.nan)
                    continue
                v = _number(c)
                if math.isnan(v) and f.kind == "boolean":
                    v = float(BOOL_WORDS.get(c.strip().lower(), math.nan))
                values.append(v)
            out[f.input] = np.asarray(values, np.float64).astype(np.float32).reshape(-1, 1)
        else:  # datetime
            series = pd.Series(["" if _missing(c, MISSING) else c for c in cells], dtype=object)
            days = parse_days(series, f.date_format)
            if f.date_format and np.isnan(days).all() and len(days):
                days = parse_days(series)
            out[f.input] = np.asarray(days, np.float32).reshape(-1, 1)
    return out


__all__ = ["encode_cells", "fast_encodable"]
