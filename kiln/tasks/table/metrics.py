"""Table metrics, scikit-learn as the reference: the image classification set plus log loss, Brier,
PR-AUC and ECE; for regression MSE, RMSE, MAE, R², MAPE (only without zero targets) and bias."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as skm

from kiln.evaluate.calibration import expected_calibration_error
from kiln.evaluate.metrics import classification_metrics


def classify_metrics(y, probs, classes: list[str], threshold: float | None = None) -> dict:
    y, probs = np.asarray(y, int), np.asarray(probs, np.float64)
    out = classification_metrics(y, probs, classes, top_k=min(5, len(classes)), threshold=threshold)
    k = len(classes)
    labels = np.arange(k)
    clipped = np.clip(probs, 1e-7, 1.0)
    clipped /= clipped.sum(1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["log_loss"] = float(skm.log_loss(y, clipped, labels=labels))
        if k == 2:
            out["brier"] = float(skm.brier_score_loss(y, probs[:, 1]))
            out["pr_auc"] = float(skm.average_precision_score(y, probs[:, 1])) if len(np.unique(y)) > 1 else None
        else:
            onehot = np.eye(k)[y]
            out["brier"] = float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))
            present = [c for c in labels if (y == c).any()]
            out["pr_auc"] = float(np.mean([skm.average_precision_score(y == c, probs[:, c]) for c in present])) if len(present) > 1 else None
    out["ece"] = float(expected_calibration_error(y, probs))
    return out


def regress_metrics(y, pred) -> dict:
    y, pred = np.asarray(y, np.float64).ravel(), np.asarray(pred, np.float64).ravel()
    mse = float(skm.mean_squared_error(y, pred))
    out = {"n": int(len(y)), "mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(skm.mean_absolute_error(y, pred)),
           "r2": float(skm.r2_score(y, pred)) if len(y) > 1 else None, "bias": float(pred.mean() - y.mean())}
    if (y == 0).any():
        out["mape"] = None
        out["mape_note"] = f"left out: {int((y == 0).sum())} true values are zero"
    else:
        out["mape"] = float(skm.mean_absolute_percentage_error(y, pred))
    return out


def score(metrics: dict, task: str) -> float:
    """The one number baselines and the bench compare (higher is better): accuracy, or R²."""
    return metrics["accuracy"] if task == "classification" else metrics["r2"]


__all__ = ["classify_metrics", "regress_metrics", "score"]
