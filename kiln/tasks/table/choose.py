"""`model=auto` for tables: `linear`, `tabm` or `resnet_plr`, chosen from the training split alone.

For every size below NETWORK_ROWS the evidence is a K-fold cross-validation on the training rows only (val
and test are not looked at) of scikit-learn's linear model and HistGradientBoosting (the run's own baselines,
kiln/tasks/table/baselines.py): a table that a linear model fits as well as trees do gets `linear`, which then
matches the linear baseline; a table where trees clearly fit better gets the network, `tabm` (TabM-mini over
PLR embeddings, kiln/tasks/table/tabm.py), which is strong on small tables where one MLP overfits. From
NETWORK_ROWS the network has data enough and the comparison is not worth its cost: `resnet_plr`. Below
MIN_CV_ROWS (or with a class of one training row) there is nothing to cross-validate.
Why, measured (BENCHMARKS.md, "Small tables"): the old "< 200 rows -> linear" rule gave cars (159 training
rows) the linear model: 3.56 RMSE on the held-out half (mean of 3 seeds) where HistGB scores 3.13 and `tabm` 2.86.
"""

from __future__ import annotations

import time

import numpy as np

MIN_CV_ROWS = 30  # below: `linear` without a comparison (5 folds of < 6 rows say nothing)
NETWORK_ROWS = 20_000  # from here: `resnet_plr` without a comparison (keeps the large table's path cheap)
SMALL_NETWORK = "tabm"  # the network where trees beat the linear model below NETWORK_ROWS
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
    if n < MIN_CV_ROWS:
        return "linear", f"{n} training rows (< {MIN_CV_ROWS}): too few to cross-validate; the linear model"
    if n >= NETWORK_ROWS:
        return "resnet_plr", f"{n:,} training rows (>= {NETWORK_ROWS:,}): data enough for the deep network"
    if spec.task == "classification" and np.bincount(np.asarray(y)).min() < 2:
        return SMALL_NETWORK, "a class with one training row: no cross-validation to choose by"
    started = time.time()
    folds = cv_folds(spec, inputs, y, seed)
    use_linear, gain, se = linear_is_enough(folds)
    metric = "accuracy" if spec.task == "classification" else "R²"
    verdict = "trees gain no more than that: a linear model is enough" if use_linear else "trees fit better than a linear model"
    return ("linear" if use_linear else SMALL_NETWORK,
            f"{len(folds['linear'])}-fold {metric} on the {n} training rows: scikit-learn linear {folds['linear'].mean():.3f}, "
            f"HistGradientBoosting {folds['hist_gradient_boosting'].mean():.3f} (gain {gain:+.3f} ± {se:.3f} s.e.): {verdict} "
            f"({time.time() - started:.1f} s)")


__all__ = ["FOLDS", "MIN_CV_ROWS", "NETWORK_ROWS", "SMALL_NETWORK", "choose_model", "cv_folds", "linear_is_enough"]
