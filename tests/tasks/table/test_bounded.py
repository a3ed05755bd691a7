"""Costs bounded on large tables: baselines fit on a seeded sample of the training rows (and say how
many); permutation importance shuffles the encoded columns of at most max_rows rows."""

from __future__ import annotations

import numpy as np

from kiln.tasks.table.baselines import fit_baselines
from kiln.tasks.table.columns import infer_columns
from kiln.tasks.table.importance import permutation_importance
from kiln.tasks.table.predict import encode_rows
from kiln.tasks.table.prepare import resolve_target
from kiln.tasks.table.spec import build_spec
from kiln.tasks.table.synth import make_table


def _prepared(n=500, task="classification"):
    frame = make_table(n, seed=2, task=task)
    target = resolve_target(frame, "label")
    feats = frame.drop(columns=["label"])
    spec = build_spec(feats, infer_columns(feats), "label", target.task, np.ones(n, bool), target.classes, target.y)
    return spec, encode_rows(frame, spec), target.y


def test_baselines_on_a_sample_say_so():
    spec, x, y = _prepared()
    test = ({k: v[400:] for k, v in x.items()}, y[400:])
    full = fit_baselines(spec, {k: v[:400] for k, v in x.items()}, y[:400], {"test": test})
    part = fit_baselines(spec, {k: v[:400] for k, v in x.items()}, y[:400], {"test": test}, max_rows=150)
    assert {m["train_rows"] for m in full["test"].values()} == {400}
    assert {m["train_rows"] for m in part["test"].values()} == {150}
    assert part["test"]["hist_gradient_boosting"]["accuracy"] > part["test"]["dummy"]["accuracy"]


def test_importance_on_encoded_columns_finds_the_signal():
    spec, x, y = _prepared(400, "regression")
    calls = []

    def predict(inputs):  # an oracle of the target's main drivers: age and city carry it, flag less
        calls.append(len(inputs["age"]))
        age = np.nan_to_num(inputs["age"][:, 0].astype(float), nan=40.0)
        city = np.vectorize({"Paris": 1.0, "Lyon": -0.5, "Nice": 0.3, "Lille": -1.0}.get)(inputs["city"][:, 0], 0.0)
        return (10 * ((age - 40) / 12 + city) + 50).reshape(-1, 1)

    imp = permutation_importance(predict, x, y, spec, seed=0, repeats=2, max_rows=300)
    assert set(imp) == {f.column for f in spec.used} and list(imp)[0] in ("age", "city")
    assert imp["flag"]["mean"] == 0.0 and imp["age"]["mean"] > 0.3
    assert set(calls) == {300} and len(calls) == 1 + 2 * len(spec.used)
