"""`model=auto` for tables: `linear` or `resnet_plr`, chosen from the training split alone.

Below LINEAR_ROWS training rows the network has too little to learn from: `linear`. From NETWORK_ROWS
the network has data enough and the choice is not worth its cost: `resnet_plr`. Between them,
scikit-learn's linear model and HistGradientBoosting (the run's own baselines, kiln/tasks/table/baselines.py)
are scored by K-fold cross-validation on the training rows only (val and test are not looked at):
a table that a linear model fits as well as trees do gets the linear network, which then matches
the linear baseline instead of losing a few rows to a network that overfits a few hundred rows.
Why the rule, measured (BENCHMARKS.md, "Tables ... session 6"): on diabetes, penguins and breast
cancer the linear model beat both trees and the network; on cars and seattle weather trees and the
network beat the linear model.
"""

from __future__ import annotations

import time

import numpy as np

LINEAR_ROWS = 200  # below: `linear` without a comparison (a 5-fold score of ~30 rows a fold is noise)
NETWORK_ROWS = 20_000  # from here: `resnet_plr` without a comparison (keeps the large table's path cheap)
FOLDS = 5


def cv_folds(spec, inputs: dict, y, seed: int, folds: int = FOLDS) -> dict[str, np.ndarray]:
    """Per-fold K-fold scores (accuracy, or R² for regression) of the linear and HistGB baselines on these rows."""
    from sklearn.base import clone
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import KFold, StratifiedKFold

    from kiln.tasks.table.baselines import _pipelines, _threads, sklearn_frame

    x, num, cat = sklearn_frame(inputs, spec)
    y = np.asarray(y)
    classify = spec.task == "classification"
    if classify:
        folds = max(2, min(folds, int(np.bincount(y).min()) if len(y) else 2))  # every fold holds every class
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(folds, shuffle=True, random_state=seed)
    pipes = _pipelines(spec.task, num, cat, seed)
    scores: dict[str, list[float]] = {"linear": [], "hist_gradient_boosting": []}
    with _threads(len(y)):  # one thread for a small table (baselines.py: HistGB 7.5 s -> 0.3 s on 274 rows)
        for tr, te in splitter.split(x, y):
            for name in scores:
                est = clone(pipes[name]).fit(x.iloc[tr], y[tr])
                pred = est.predict(x.iloc[te])
                scores[name].append(accuracy_score(y[te], pred) if classify else r2_score(y[te], pred))
    return {k: np.asarray(v) for k, v in scores.items()}


def linear_is_enough(folds: dict[str, np.ndarray]) -> tuple[bool, float, float]:
    """(linear chosen, mean of HistGB - linear over the folds, its standard error): the one-standard-error rule.

    Trees must beat the linear model by more than the standard error of the per-fold differences, else the
    simpler model is kept (Breiman et al.'s rule for choosing among models by cross-validation): a 1-row
    difference of a 55-row fold is 1.8 points of accuracy, noise a choice must not follow."""
    diff = folds["hist_gradient_boosting"] - folds["linear"]
    se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return float(diff.mean()) <= se + 1e-9, float(diff.mean()), se  # one fold alone differing: mean = s.e. exactly


def choose_model(spec, inputs: dict, y, seed: int) -> tuple[str, str]:
    """(model name, why) for `model=auto` from the encoded training rows and their targets."""
    n = len(y)
    if n < LINEAR_ROWS:
        return "linear", f"{n} training rows (< {LINEAR_ROWS}): too few for a deep network"
    if n >= NETWORK_ROWS:
        return "resnet_plr", f"{n:,} training rows (>= {NETWORK_ROWS:,}): data enough for the deep network"
    if spec.task == "classification" and np.bincount(np.asarray(y)).min() < 2:
        return "resnet_plr", "a class with one training row: no cross-validation to choose by"
    started = time.time()
    folds = cv_folds(spec, inputs, y, seed)
    use_linear, gain, se = linear_is_enough(folds)
    metric = "accuracy" if spec.task == "classification" else "R²"
    verdict = "trees gain no more than that: a linear model is enough" if use_linear else "trees fit better than a linear model"
    return ("linear" if use_linear else "resnet_plr",
            f"{len(folds['linear'])}-fold {metric} on the {n} training rows: scikit-learn linear {folds['linear'].mean():.3f}, "
            f"HistGradientBoosting {folds['hist_gradient_boosting'].mean():.3f} (gain {gain:+.3f} ± {se:.3f} s.e.): {verdict} "
            f"({time.time() - started:.1f} s)")


__all__ = ["FOLDS", "LINEAR_ROWS", "NETWORK_ROWS", "choose_model", "cv_folds", "linear_is_enough"]
