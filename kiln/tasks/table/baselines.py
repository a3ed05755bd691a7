"""Honest baselines on the same split: a dummy, a scikit-learn linear model and HistGradientBoosting.

They read the same columns the network reads (the spec's decisions, dates as days plus month and
day of week), so a network that loses to them loses fairly. On a large table they fit on a seeded
sample of MAX_TRAIN_ROWS training rows (each baseline's metrics say how many in `train_rows`): the
cost of HistGradientBoosting and the category encoders grows with the rows, their score barely does.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from kiln.tasks.table.metrics import classify_metrics, regress_metrics

log = logging.getLogger("kiln.table")

MAX_TRAIN_ROWS = 20_000


def sklearn_frame(inputs: dict, spec) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Model inputs -> (frame, numeric columns, category columns) for scikit-learn."""
    cols, num, cat = {}, [], []
    for f in spec.used:
        x = inputs[f.input][:, 0]
        if f.encoding == "numeric":
            cols[f.input] = x.astype(np.float64)
            num.append(f.input)
        elif f.encoding == "datetime":
            d = x.astype(np.float64)
            ok = np.isfinite(d)
            dt = np.where(ok, d, 0).astype("datetime64[D]")
            cols[f.input] = d
            cols[f.input + "__month"] = np.where(ok, dt.astype("datetime64[M]").astype(int) % 12 + 1, np.nan)
            cols[f.input + "__dow"] = np.where(ok, (np.floor(np.where(ok, d, 0)) + 3) % 7, np.nan)
            num += [f.input, f.input + "__month", f.input + "__dow"]
        else:
            cols[f.input] = x.astype(str)
            cat.append(f.input)
    return pd.DataFrame(cols), num, cat


def _pipelines(task: str, num: list[str], cat: list[str], seed: int):
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    linear_prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), num),
        ("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=2, max_categories=100), cat)])
    tree_prep = ColumnTransformer([
        ("num", "passthrough", num),
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan,
                               max_categories=250), cat)])
    cat_mask = [False] * len(num) + [True] * len(cat)
    if task == "classification":
        return {"dummy": DummyClassifier(strategy="prior"),
                "linear": make_pipeline(linear_prep, LogisticRegression(max_iter=2000)),
                "hist_gradient_boosting": make_pipeline(tree_prep, HistGradientBoostingClassifier(categorical_features=cat_mask, random_state=seed))}
    return {"dummy": DummyRegressor(strategy="mean"),
            "linear": make_pipeline(linear_prep, RidgeCV(alphas=np.logspace(-3, 3, 13))),
            "hist_gradient_boosting": make_pipeline(tree_prep, HistGradientBoostingRegressor(categorical_features=cat_mask, random_state=seed))}


def fit_baselines(spec, train_inputs: dict, y_train, eval_sets: dict, seed: int = 0, max_rows: int = MAX_TRAIN_ROWS) -> dict:
    """{split: {baseline: metrics}} for every split in `eval_sets` ({split: (inputs, y)})."""
    y_train = np.asarray(y_train)
    n = len(y_train)
    if max_rows and n > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
        train_inputs, y_train = {k: v[keep] for k, v in train_inputs.items()}, y_train[keep]
        log.info("table: baselines fit on %d of %d training rows (a seeded sample)", max_rows, n)
    xtr, num, cat = sklearn_frame(train_inputs, spec)
    out: dict = {s: {} for s in eval_sets}
    with _threads(n):
        for name, est in _pipelines(spec.task, num, cat, seed).items():
            _fit_one(name, est, spec, xtr, y_train, eval_sets, out)
    return out


def _threads(n: int):
    """One OpenMP / BLAS thread below MAX_TRAIN_ROWS training rows, else the libraries' own count.

    HistGradientBoosting's threads cost more than they give on a few hundred rows: one fit of 274 rows took
    7.5 s with the default threads and 0.3 s with one on the shared 2-core machine (load ~10)."""
    import contextlib

    from threadpoolctl import threadpool_limits

    return threadpool_limits(1) if n < MAX_TRAIN_ROWS else contextlib.nullcontext()


def _fit_one(name, est, spec, xtr, y_train, eval_sets: dict, out: dict) -> None:
    """Fit one baseline and score it on every split of `eval_sets` into out[split][name]."""
    started = time.time()
    est.fit(xtr, y_train)
    for split, (inputs, y) in eval_sets.items():
        x = sklearn_frame(inputs, spec)[0]
        if spec.task == "classification":
            probs = np.zeros((len(x), len(spec.classes)))
            probs[:, est.classes_] = est.predict_proba(x)
            m = classify_metrics(y, probs, spec.classes)
            m = {k: v for k, v in m.items() if k not in ("per_class", "confusion_matrix", "classes")}
        else:
            m = regress_metrics(y, est.predict(x))
        m["fit_seconds"], m["train_rows"] = round(time.time() - started, 3), int(len(y_train))
        out[split][name] = m


__all__ = ["fit_baselines", "sklearn_frame"]
