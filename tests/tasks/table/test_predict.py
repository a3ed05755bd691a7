"""The fast per-column encoder (kiln/tasks/table/predict.py) gives what inferring each column again
with its trained kind gives, on messy cells; batched prediction keeps row order and shape."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kiln.tasks.table.columns import category_values, infer_column, infer_columns, parse_days
from kiln.tasks.table.predict import encode_rows, predict_inputs
from kiln.tasks.common.tabular import missing_mask
from kiln.tasks.table.spec import build_spec
from kiln.tasks.table.synth import make_table


def _reference(frame, spec) -> dict:
    """The encoding by full re-inference, as the table task did it before predict.py."""
    out = {}
    for f in spec.used:
        values = frame[f.column]
        col = infer_column(f.column, values, kind=f.kind)
        if f.encoding == "category":
            out[f.input] = category_values(values, col.missing).reshape(-1, 1)
            continue
        x = parse_days(values.astype(object).where(~missing_mask(values), ""), f.date_format) if f.encoding == "datetime" else col.numbers
        out[f.input] = np.asarray(x, np.float32).reshape(-1, 1)
    return out


def _messy(n=300, seed=3):
    frame = make_table(n, seed).astype(object)
    frame["score"] = [f" {v:.2f} " for v in np.random.default_rng(seed).normal(size=n)]
    frame.loc[::7, "age"] = " NA "
    frame.loc[3, "age"], frame.loc[4, "age"], frame.loc[5, "age"] = "lots", "inf", "-"
    frame.loc[6, "city"], frame.loc[7, "city"], frame.loc[8, "city"] = " Paris ", "n/a", "Atlantis"
    frame.loc[9, "flag"], frame.loc[10, "flag"], frame.loc[11, "flag"] = " yes", "?", "no "
    frame.loc[12, "joined"], frame.loc[13, "joined"] = "", "not a date"
    return frame.astype(str)


def _spec(frame):
    cols = infer_columns(frame.drop(columns=["label"]))
    train = np.ones(len(frame), bool)
    return build_spec(frame.drop(columns=["label"]), cols, "label", "classification", train, ["c0", "c1"], np.zeros(len(frame), int))


def test_encode_matches_reinference_on_messy_cells():
    frame = _messy()
    spec = _spec(frame)
    assert {f.column: f.encoding for f in spec.used} == {"age": "numeric", "city": "category", "joined": "datetime", "flag": "numeric",
                                                        "score": "numeric"}
    got, ref = encode_rows(frame, spec), _reference(frame, spec)
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].shape == (len(frame), 1) and got[k].dtype == ref[k].dtype, k
        if got[k].dtype == object:
            assert (got[k] == ref[k]).all(), k
        else:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    x = got
    assert np.isnan(x["age"][[0, 3, 4, 5], 0]).all() and x["city"][6, 0] == "Paris" and x["city"][7, 0] == ""
    assert x["flag"][9, 0] == 1.0 and x["flag"][11, 0] == 0.0 and np.isnan(x["flag"][10, 0]) and np.isnan(x["joined"][[12, 13], 0]).all()


def test_encode_typed_columns_as_text_columns():
    """Rows that arrive typed (JSON numbers, None, booleans, Arrow strings) encode as their text would."""
    frame = _messy(60)
    spec = _spec(frame)
    typed = frame.copy()
    typed["score"] = pd.to_numeric(typed["score"].str.strip())
    typed["age"] = pd.to_numeric(typed["age"].str.strip(), errors="coerce")
    typed["city"] = typed["city"].astype("string[pyarrow]")
    typed.loc[7, "city"] = None
    a, b = encode_rows(typed, spec), encode_rows(frame, spec)
    for k in b:
        if b[k].dtype == object:
            assert (a[k] == b[k]).all(), k
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_predict_inputs_batches_in_order():
    import keras

    from kiln.tasks.table.models import MODELS

    frame = _messy(100)
    spec = _spec(frame)
    keras.utils.set_random_seed(0)
    model = MODELS.create("linear", spec, 2)
    x = encode_rows(frame, spec)
    whole = predict_inputs(model, x, batch_size=1000)
    parts = predict_inputs(model, x, batch_size=33)
    assert whole.shape == (100, 2) and np.allclose(whole, parts, atol=1e-6)
    assert predict_inputs(model, {k: v[:0] for k, v in x.items()}).shape == (0, 2)


def test_fast_number_parse_is_pandas_parse():
    from kiln.tasks.table.predict import _arrow_numbers, _numbers, _strings

    for cells in (["1", " 2.5", "", "NA", "?", "1e3", "-4", "inf"], ["1", "abc", "3"], ["+5", ".5", "5."], ["1,5", "2"]):
        s = pd.Series(cells, dtype=str)
        want = pd.to_numeric(_strings(s), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        np.testing.assert_array_equal(_numbers(s), np.where(np.isfinite(want), want, np.nan))
    assert _arrow_numbers(pd.Series(["1", "abc"], dtype=str)) is None  # stray text: pandas decides
