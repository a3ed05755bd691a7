"""Raw rows -> model inputs -> model outputs, fast enough for `kiln predict` on large files.

Each column is parsed once, vectorised, as the kind decided at training (the spec's `kind`): no
type inference, no value counts. The result is the same as inferring the column again with that
kind (tests/tasks/table/test_predict.py compares the two): missing spellings, stray text and
non-finite numbers become NaN, categories become stripped strings with '' for a missing cell (the
out-of-vocabulary slot of VocabLookup).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from kiln.tasks.common.tabular import MISSING

PREDICT_BATCH = 8192  # rows per model call: large enough that per-call overhead is small, small enough for bounded memory


def _strings(values: pd.Series) -> pd.Series:
    """Cells as stripped str ('' for None / NaN), whatever the column's dtype (text, Arrow strings, JSON values)."""
    s = values.astype(object)
    return s.where(s.notna(), "").astype(str).str.strip()


def _numbers(values: pd.Series) -> np.ndarray:
    """float64 with NaN for missing, stray text and non-finite cells."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        x = _arrow_numbers(values)
        if x is None:
            x = pd.to_numeric(_strings(values), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(x), x, np.nan)


def _arrow_numbers(values: pd.Series) -> np.ndarray | None:
    """float64 by pyarrow's parser for a text column of clean numbers and missing spellings, else None.

    Why: pandas' `to_numeric` on 100,000 strings takes ~0.07 s a column, most of encoding a wide table;
    pyarrow's cast ~5x less. A cell it will not parse (stray text, a spelling pandas reads and pyarrow does
    not) makes the whole column go through pandas, so the result is always pandas' result."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        cells = pc.utf8_trim_whitespace(pa.array(values, type=pa.string(), from_pandas=True))
        cells = pc.if_else(pc.is_in(pc.utf8_lower(cells), value_set=_missing_arrow()), pa.scalar(None, pa.string()), cells)
        return pc.cast(cells, pa.float64()).to_numpy(zero_copy_only=False)
    except (ImportError, ValueError, TypeError, NotImplementedError):  # ArrowInvalid is a ValueError
        return None


@functools.lru_cache(maxsize=1)
def _missing_arrow():
    """MISSING as a pyarrow array, built once (`is_in` takes it for every column)."""
    import pyarrow as pa

    return pa.array(sorted(MISSING), pa.string())


def _booleans(values: pd.Series) -> np.ndarray:
    from kiln.tasks.table.columns import BOOL_WORDS

    if pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    s = _strings(values)
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    words = s.str.lower().map(BOOL_WORDS).to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(x), x, words)


def _days(values: pd.Series, date_format: str | None) -> np.ndarray:
    from kiln.tasks.table.columns import parse_days

    s = _strings(values)
    s = s.where(~s.str.lower().isin(MISSING), "")
    x = parse_days(s, date_format)
    if date_format and len(x) and np.isnan(x).all():  # a file written with another date format than training's
        x = parse_days(s)
    return x


def _categories(values: pd.Series) -> np.ndarray:
    s = _strings(values)
    return s.where(~s.str.lower().isin(MISSING), "").to_numpy(dtype=object)


def encode_column(values: pd.Series, feature) -> np.ndarray:
    """One column's model input, (N, 1): float32 with NaN for missing, or str ('' for missing)."""
    if feature.encoding == "category":
        return _categories(values).reshape(-1, 1)
    if feature.encoding == "datetime":
        x = _days(values, feature.date_format)
    elif feature.kind == "boolean":
        x = _booleans(values)
    else:
        x = _numbers(values)
    return x.astype(np.float32).reshape(-1, 1)


def encode_rows(frame: pd.DataFrame, spec) -> dict[str, np.ndarray]:
    """Model inputs from raw rows: input name -> (N, 1) array, for every column the model uses."""
    return {f.input: encode_column(frame[f.column], f) for f in spec.used}


def predict_inputs(model, x: dict, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """The model's output for encoded inputs, in batches of `batch_size` rows through one traced function."""
    import tensorflow as tf

    n = len(next(iter(x.values())))
    outs = []
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        pad = start + batch_size - stop if n > batch_size else 0  # the last batch padded: every call the same shape, one trace
        batch = {k: tf.constant(np.concatenate([v[start:stop], v[stop - 1:stop].repeat(pad, 0)]) if pad else v[start:stop]) for k, v in x.items()}
        outs.append(np.asarray(model.predict_on_batch(batch))[:stop - start])
    if not outs:  # no rows: the model's own answer for an empty batch (an ensemble has no `outputs` to read a width from)
        return np.asarray(model.predict_on_batch({k: tf.constant(v[:0]) for k, v in x.items()}))
    return np.concatenate(outs)


__all__ = ["PREDICT_BATCH", "encode_column", "encode_rows", "predict_inputs"]
