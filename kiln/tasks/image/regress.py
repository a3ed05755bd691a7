"""Image regression: a CSV `path,<column of numbers>` with `target=` (or a label column of decimal numbers) ->
a model that answers one value per image.

The image task's pipeline and backbones stay as they are; the head changes (`value_head`: one linear unit
on the features the classifier's "predictions" layer read, in the target's own units through a fixed
Rescaling by the training split's mean and std, as the table task does) and so do the metrics (R2, RMSE,
MAE, bias), the plots (predicted vs actual, residuals), export parity (`value_parity`) and the answers.

    values, column = read_target(frame, "angle", csv_path, "data")   # float values, or (None, None) for classes
    model = value_head(classifier, mean, std)
    regress_metrics(y, pred)  # {"r2", "rmse", "mae", "bias", "n"}
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.errors import DataError, received

log = logging.getLogger("kiln.data")

FIX_TARGET = "Name a column of numbers with target=COL (CSV columns: path,COL[,split])"


def read_target(frame: pd.DataFrame, target: str | None, path: Path, component: str) -> tuple[np.ndarray | None, str | None]:
    """(float values, column name) of the CSV's numeric target, or (None, None) when the labels name classes.

    `target=` names the column (missing or not numbers: one line naming it). Without it, a label column
    whose every value is a number and some are not whole regresses: integer labels stay class names."""
    if target is None:
        if "label" not in frame.columns or not len(frame):
            return None, None
        values = pd.to_numeric(frame["label"].str.strip(), errors="coerce").to_numpy(np.float64)
        if np.isfinite(values).all() and (values != np.round(values)).any():
            log.info("%s: the label column of %s holds decimal numbers: training a regressor on it "
                     "(integer labels name classes)", component, path)
            return values, "label"
        return None, None
    column = target.strip().lower()
    if column not in frame.columns:
        raise DataError(received(component, "target", target, f"{path} has no such column (found {', '.join(frame.columns)})",
                                 FIX_TARGET))
    if column in ("path", "split"):
        raise DataError(received(component, "target", target, f"the {column} column of {path} is not a value to predict", FIX_TARGET))
    text = frame[column].str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(received(component, "target", target, f"column {column} of {path} holds text, not numbers "
                                 f"({int(bad.sum())} row(s); first: {text.iloc[first]!r} on CSV line {first + 2})",
                                 "Fix or remove those rows; a column of class names trains a classifier as label"))
    if np.unique(values).size < 2:
        raise DataError(received(component, "target", target, f"column {column} of {path} holds one value", "A regressor needs varied targets"))
    return values, column


def value_head(model, mean: float, std: float):
    """`model` with its softmax "predictions" replaced by one linear unit, rescaled to the target's units (a model
    without a "predictions" layer, your own, is rescaled as it is).

    The new Dense keeps the name "predictions" (weights=RUN reuses what feeds it) and starts at zero, so the
    first prediction is the training mean; "value" multiplies by the std and adds the mean."""
    import keras

    try:
        head = model.get_layer("predictions")
    except ValueError:  # your own model (model=FILE.py:build) already ends in one linear unit
        z = model.outputs[0]
    else:
        z = keras.layers.Dense(1, kernel_initializer="zeros", dtype="float32", name="predictions")(head.input)
    out = keras.layers.Rescaling(scale=float(std), offset=float(mean), dtype="float32", name="value")(z)
    return keras.Model(model.inputs, out, name=model.name)


def regress_metrics(y, pred) -> dict:
    """R2, RMSE, MAE, bias (mean of prediction - target) and n."""
    y = np.asarray(y, np.float64).reshape(-1)
    pred = np.asarray(pred, np.float64).reshape(-1)
    err = pred - y
    ss = float(np.sum((y - y.mean()) ** 2)) if len(y) else 0.0
    return {"r2": float(1 - np.sum(err ** 2) / ss) if ss > 0 else None, "rmse": float(np.sqrt(np.mean(err ** 2))) if len(y) else None,
            "mae": float(np.mean(np.abs(err))) if len(y) else None, "bias": float(np.mean(err)) if len(y) else None, "n": int(len(y))}


def target_meta(rows: pd.DataFrame, column: str) -> dict:
    """run.json "target": the column and the training split's mean and std (the head's scale)."""
    train = rows.loc[rows["split"] == "train", "y"].to_numpy(np.float64)
    std = float(train.std()) or 1.0
    return {"name": column, "mean": float(train.mean()), "std": std, "min": float(train.min()), "max": float(train.max())}


# ---- baselines: the field's honest ones, on the same split and the same decoded pixels -------------------

BASELINE_SIDE = 16  # pixels are averaged down to at most this side for the baselines (cv2.INTER_AREA)
BASELINE_MAX_TRAIN = 5000  # a seeded sample of training images beyond this


def small_pixels(images: np.ndarray, side: int = BASELINE_SIDE) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, h*w*C) float32 in [0, 1], each image area-averaged to at most `side` px a side."""
    import cv2

    n, h, w, c = images.shape
    scale = min(1.0, side / max(h, w))
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.empty((n, th * tw * c), np.float32)
    for i, img in enumerate(images):
        small = img if (th, tw) == (h, w) else cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
        out[i] = small.reshape(-1) / 255.0
    return out


def fit_baselines(train_x: np.ndarray, train_y, eval_sets: dict, seed: int = 0) -> dict:
    """{split: {baseline: metrics}}: the training mean, ridge (alpha by cross-validation) and HistGradientBoosting
    on the same downscaled pixels; `eval_sets` is {split: (pixels, y)}."""
    import time

    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from threadpoolctl import threadpool_limits

    train_y = np.asarray(train_y, np.float64)
    models = {"mean": None, "ridge_pixels": RidgeCV(alphas=np.logspace(-2, 4, 13)),
              "gradient_boosting_pixels": HistGradientBoostingRegressor(random_state=seed)}
    out: dict = {s: {} for s in eval_sets}
    with threadpool_limits(1 if len(train_y) < 2000 else None):
        for name, est in models.items():
            started = time.time()
            if est is not None:
                est.fit(train_x, train_y)
            for split, (x, y) in eval_sets.items():
                pred = np.full(len(y), train_y.mean()) if est is None else est.predict(x)
                m = regress_metrics(y, pred)
                m.update(fit_seconds=round(time.time() - started, 3), train_rows=int(len(train_y)))
                out[split][name] = m
    return out


__all__ = ["fit_baselines", "read_target", "regress_metrics", "small_pixels", "target_meta", "value_head"]
