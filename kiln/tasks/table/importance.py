"""Permutation feature importance on val, per original column (scikit-learn's permutation_importance
with the Keras model behind a scorer), so one-hot and date parts count as the one column they came from.

The rows are encoded once and the encoded columns are shuffled: every column is one model input,
so shuffling the input is shuffling the column, without parsing the rows again for each of the
columns x repeats passes. At most MAX_ROWS val rows are scored (a seeded sample).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_ROWS = 2000


def permutation_importance(predict, inputs: dict, y, spec, seed: int = 0, repeats: int = 3, max_rows: int = MAX_ROWS) -> dict[str, dict]:
    """{column: {"mean", "std"}} of the score drop (accuracy or R²) when that column is shuffled.

    `inputs`: encoded model inputs ({input: (N, 1) array}); `predict(inputs) -> outputs`."""
    from sklearn.inspection import permutation_importance as sk_permutation

    from kiln.tasks.table.metrics import classify_metrics, regress_metrics, score

    used = spec.used
    x = pd.DataFrame({f.input: inputs[f.input][:, 0] for f in used})
    y = np.asarray(y)
    if len(x) > max_rows:
        keep = np.random.default_rng(seed).choice(len(x), max_rows, replace=False)
        x, y = x.iloc[keep].reset_index(drop=True), y[keep]

    class KerasBehindScorer:  # what sklearn needs of an estimator here: something the scorer can call
        def fit(self, *_):
            return self

    def scorer(_, xp, yp):
        out = predict({f.input: xp[f.input].to_numpy(dtype=inputs[f.input].dtype).reshape(-1, 1) for f in used})
        m = classify_metrics(yp, out, spec.classes) if spec.task == "classification" else regress_metrics(yp, out)
        return score(m, spec.task)

    r = sk_permutation(KerasBehindScorer(), x, y, scoring=scorer, n_repeats=repeats, random_state=seed)
    order = np.argsort(-r.importances_mean)
    return {used[i].column: {"mean": float(r.importances_mean[i]), "std": float(r.importances_std[i])} for i in order}


__all__ = ["permutation_importance"]
