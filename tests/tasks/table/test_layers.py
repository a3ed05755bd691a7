"""In-model preprocessing: imputation with an indicator, calendar parts, PLR embedding shapes, spec decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kiln.tasks.table.columns import infer_columns
from kiln.tasks.table.spec import build_spec, encode_rows
from kiln.tasks.table.synth import make_table


def test_impute_and_date_parts_match_pandas():
    from kiln.tasks.table.layers import DateParts, Impute

    out = np.asarray(Impute(5.0)(np.array([[1.0], [np.nan]], np.float32)))
    assert out.tolist() == [[1.0, 0.0], [5.0, 1.0]]
    dates = pd.to_datetime(["1970-01-01", "2000-02-29", "2024-12-31", "1969-07-20", "2031-03-01"])
    days = ((dates - pd.Timestamp("1970-01-01")).days.to_numpy() + 0.25).reshape(-1, 1).astype(np.float32)
    parts = np.asarray(DateParts(0.0, 1.0, 0.0, 1.0)(days))
    assert parts.shape == (5, 8)
    np.testing.assert_allclose(parts[:, 1], dates.year)  # year (unscaled here)
    month = np.arctan2(parts[:, 2], parts[:, 3]) % (2 * np.pi) * 12 / (2 * np.pi) + 1
    np.testing.assert_allclose(month, dates.month, atol=1e-4)
    dow = np.arctan2(parts[:, 6], parts[:, 7]) % (2 * np.pi) * 7 / (2 * np.pi)
    np.testing.assert_allclose(dow, dates.dayofweek, atol=1e-4)


def test_spec_decisions_and_model_inputs():
    import keras

    from kiln.tasks.table.models import MODELS

    frame = make_table(200, seed=3)
    cols = infer_columns(frame.drop(columns=["label"]))
    train = np.ones(len(frame), bool)
    spec = build_spec(frame.drop(columns=["label"]), cols, "label", "classification", train, ["c0", "c1"], np.zeros(200, int))
    enc = {f.column: f.encoding for f in spec.features}
    assert enc == {"id": "dropped", "age": "numeric", "city": "category", "joined": "datetime", "flag": "numeric", "note": "dropped"}
    age = next(f for f in spec.features if f.column == "age")
    assert age.missing_indicator and age.fill is not None
    x = encode_rows(frame, spec)
    assert set(x) == {"age", "city", "joined", "flag"} and x["city"].dtype == object and np.isnan(x["age"]).sum() > 0
    for name in ("linear", "dnn", "resnet_plr"):
        model = MODELS.create(name, spec, 2)
        assert sorted(model.input_names if hasattr(model, "input_names") else [i.name for i in model.inputs]) == sorted(x)
        import tensorflow as tf

        out = np.asarray(model({k: tf.constant(v) for k, v in x.items()}))
        assert out.shape == (200, 2) and np.allclose(out.sum(1), 1, atol=1e-5)
    unseen = frame.iloc[:2].assign(city=["Atlantis", ""], age=["", "oops"])
    out = MODELS.create("dnn", spec, 2)({k: tf.constant(v) for k, v in encode_rows(unseen, spec).items()})
    assert np.isfinite(np.asarray(out)).all()  # unseen category -> OOV bucket, empty / stray -> imputed
    assert isinstance(model, keras.Model)
