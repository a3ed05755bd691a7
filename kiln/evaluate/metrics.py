"""Classification metrics with scikit-learn as the reference implementation."""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np
from sklearn import metrics as skm


def classification_metrics(y_true, probs, classes: list[str], top_k: int = 5, threshold: float | None = None) -> dict:
    """One split's metrics: accuracy, top-k, macro/weighted F1, ROC-AUC, per-class table, confusion matrix.

    `threshold` (two-class runs): predict class 1 when its probability is >= threshold instead of argmax.
    """
    from kiln.evaluate.threshold import apply_threshold

    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    labels = np.arange(k)
    y_pred = apply_threshold(probs, threshold if k == 2 else None)
    top_k = useful_top_k(top_k, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined precision for absent classes -> 0, reported as such
        p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        out = {
            "n": int(len(y_true)),
            "accuracy": float(skm.accuracy_score(y_true, y_pred)),
            **({"top_k": top_k, "top_k_accuracy": float(skm.top_k_accuracy_score(y_true, probs, k=top_k, labels=labels))}
               if top_k else {}),
            "macro_f1": float(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
            "weighted_f1": float(skm.f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
            "roc_auc": roc_auc(y_true, probs),
        }
    out["per_class"] = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, c in enumerate(classes)
    }
    out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    out["classes"] = list(classes)
    if k == 2:  # the decision threshold is stated beside the accuracy it gave, and argmax's accuracy beside both
        out["threshold"] = 0.5 if threshold is None else float(threshold)
        out["accuracy_at_0.5"] = float(skm.accuracy_score(y_true, apply_threshold(probs, 0.5)))
    return out


def useful_top_k(top_k: int, classes: int) -> int | None:
    """The k that top-k accuracy is reported for: at most classes - 1 (top-k of k classes is always 1.0), and
    None when that leaves k = 1, which is plain accuracy (two classes)."""
    k = min(int(top_k), classes - 1)
    return k if k >= 2 else None


def headline(m: Mapping) -> list[tuple[str, float | None]]:
    """What one split's classification metrics lead with, as (label, value), in the order every view shows them.

    Two classes: the threshold-free ROC-AUC and log loss first, then accuracy at the stored decision threshold
    and at 0.5 (argmax), each named with its threshold (`accuracy@0.318`), so an accuracy below the majority
    baseline is read beside the one a 0.5 cut gives. More classes: accuracy and macro F1."""
    if "accuracy_at_0.5" in m:
        rows = [("ROC-AUC", m.get("roc_auc"))] + ([("log loss", m["log_loss"])] if "log_loss" in m else [])
        t = m.get("threshold")
        if t is not None and abs(float(t) - 0.5) > 1e-9:
            rows.append((f"accuracy@{float(t):.3g}", m.get("accuracy")))
        return rows + [("accuracy@0.5", m["accuracy_at_0.5"])]
    return [("accuracy", m.get("accuracy")), ("macro F1", m.get("macro_f1"))]


def roc_auc(y_true, probs) -> float | None:
    """One-vs-rest macro ROC-AUC over the classes present in y_true (None when undefined)."""
    k = probs.shape[1]
    present = np.unique(y_true)
    if len(present) < 2:
        return None
    if k == 2:
        return float(skm.roc_auc_score(y_true, probs[:, 1]))
    aucs = [skm.roc_auc_score(y_true == c, probs[:, c]) for c in present]
    return float(np.mean(aucs))
