"""Permutation feature importance on val, per original column (scikit-learn's permutation_importance
with the Keras model behind a scorer), so one-hot and date parts count as the one column they came from."""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_ROWS = 2000


def permutation_importance(predict, frame: pd.DataFrame, y, spec, seed: int = 0, repeats: int = 3) -> dict[str, dict]:
    """{column: {"mean", "std"}} of the score drop (accuracy or R²) when that column is shuffled."""
    from sklearn.inspection import permutation_importance as sk_permutation

    from kiln.tasks.table.metrics import classify_metrics, regress_metrics, score

    cols = [f.column for f in spec.used]
    x = frame[cols].reset_index(drop=True)
    y = np.asarray(y)
    if len(x) > MAX_ROWS:
        keep = np.random.default_rng(seed).choice(len(x), MAX_ROWS, replace=False)
        x, y = x.iloc[keep].reset_index(drop=True), y[keep]

    class KerasBehindScorer:  # what sklearn needs of an estimator here: something the scorer can call
        def fit(self, *_):
            return self

    def scorer(_, xp, yp):
        out = predict(xp)
        m = classify_metrics(yp, out, spec.classes) if spec.task == "classification" else regress_metrics(yp, out)
        return score(m, spec.task)

    r = sk_permutation(KerasBehindScorer(), x, y, scoring=scorer, n_repeats=repeats, random_state=seed)
    order = np.argsort(-r.importances_mean)
    return {cols[i]: {"mean": float(r.importances_mean[i]), "std": float(r.importances_std[i])} for i in order}


__all__ = ["permutation_importance"]
