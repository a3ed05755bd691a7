"""The anomaly threshold: chosen on validation scores by a stated rule, never guessed, and explained in words.

Rules (`rule=...`):
  q0.99         the 0.99 quantile of normal val scores: about 1 % of normal rows score above it
  mean+3std     mean + K std of normal val scores
  mad           median + 3 x 1.4826 x MAD of normal val scores (robust to a few anomalies left in val)
  fpr<=0.01     the lowest threshold that flags at most that share of normal val rows (a quantile too)
  max_f1        the threshold with the best F1 on val (needs labelled anomalies in val)
  recall>=0.9   the highest threshold that still flags that share of val anomalies (needs them)
  0.37          a fixed score
  auto          max_f1 when val holds labelled anomalies, else q0.99

    value, details = choose(scores_val, labels_val, "q0.99")   # labels: 1 anomaly, 0 normal
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np

from kiln.errors import ConfigError, DataError, received

log = logging.getLogger("kiln.anomaly")

EXAMPLE = "Use rule=q0.99, mean+3std, mad, fpr<=0.01, max_f1, recall>=0.9, auto or a number"
NEEDS_LABELS = ("max_f1", "recall")
_Q = re.compile(r"^q(0?\.[0-9]+)$")
_MEAN = re.compile(r"^mean\+([0-9]*\.?[0-9]+)std$")
_CMP = re.compile(r"^(fpr<=|recall>=)([0-9]*\.?[0-9]+)$")


def parse_rule(rule) -> tuple[str, float | None]:
    """'q0.99' -> ('quantile', 0.99); 'mean+3std' -> ('mean_std', 3); 'fpr<=0.01' -> ('fpr', 0.01); 0.4 -> ('fixed', 0.4)."""
    if isinstance(rule, bool):
        raise ConfigError(received("anomaly", "rule", rule, "it is not a threshold rule", EXAMPLE))
    if isinstance(rule, (int, float)):
        if not math.isfinite(float(rule)) or float(rule) < 0:
            raise ConfigError(received("anomaly", "rule", rule, "a fixed threshold is a score, zero or more", EXAMPLE))
        return "fixed", float(rule)
    text = str(rule).strip().lower().replace(" ", "")
    if text in ("auto", "max_f1", "mad"):
        return text, None
    try:
        return parse_rule(float(text))
    except ValueError:
        pass
    if m := _Q.match(text):
        q = float(m.group(1))
        if 0 < q < 1:
            return "quantile", q
    elif m := _MEAN.match(text):
        return "mean_std", float(m.group(1))
    elif (m := _CMP.match(text)) and 0 < float(m.group(2)) <= 1:
        return m.group(1)[:-2], float(m.group(2))
    raise ConfigError(received("anomaly", "rule", rule, "it is not a threshold rule", EXAMPLE))


def needs_labels(rule) -> bool:
    return parse_rule(rule)[0] in NEEDS_LABELS


def _quantile(normal: np.ndarray, q: float) -> tuple[float, str]:
    need = int(math.ceil(1 / (1 - q)))
    if len(normal) < need:
        log.warning("anomaly: rule q%g needs at least %d normal val rows to place its quantile and val has %d; "
                    "the threshold is the largest normal val score instead", q, need, len(normal))
        return float(normal.max()), f"the largest of {len(normal)} normal val scores (too few rows for the {q:g} quantile)"
    return float(np.quantile(normal, q)), f"about {100 * (1 - q):.3g} % of normal val rows score above it"


def _counts(scores: np.ndarray, labels: np.ndarray, t: float) -> dict:
    flag = scores > t
    tp, fp = int((flag & (labels == 1)).sum()), int((flag & (labels == 0)).sum())
    pos, neg = int((labels == 1).sum()), int((labels == 0).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / pos if pos else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "fpr": fp / neg if neg else 0.0}


def _max_f1(scores, labels) -> float:
    """The threshold with the best F1 on val (flagged means score > threshold: just under the best cut)."""
    from sklearn.metrics import precision_recall_curve

    p, r, t = precision_recall_curve(labels, scores)
    f1 = np.where(p[:-1] + r[:-1] > 0, 2 * p[:-1] * r[:-1] / np.maximum(p[:-1] + r[:-1], 1e-12), 0.0)
    return float(np.nextafter(t[int(np.argmax(f1))], -np.inf))


def _recall(scores, labels, target) -> float:
    """The highest threshold whose recall on val anomalies is >= target."""
    pos = np.sort(scores[labels == 1])
    k = int(math.ceil(target * len(pos)))  # anomalies that must score above it
    return float(np.nextafter(pos[len(pos) - k], -np.inf)) if k else float(pos.max())


def choose(scores, labels, rule) -> tuple[float, dict]:
    """(threshold, details for run.json: rule, value, meaning in words, split, counts, precision / recall / F1 when labelled)."""
    scores = np.asarray(scores, np.float64)
    labels = np.zeros(len(scores), int) if labels is None else np.asarray(labels, int)
    normal, anomalies = scores[labels == 0], int((labels == 1).sum())
    kind, x = parse_rule(rule)
    asked = str(rule)
    if kind == "auto":
        kind, x = ("max_f1", None) if anomalies else ("quantile", 0.99)
    if kind in NEEDS_LABELS and not anomalies:
        log.warning("anomaly: rule %s needs labelled anomalies in val and val has none; q0.99 of normal val scores is used instead", asked)
        kind, x = "quantile", 0.99
    if not len(normal) and kind != "fixed":
        raise DataError(received("train", "rule", asked, "val holds no normal rows to place the threshold on",
                                 "Give val normal rows (data.val_split=0.1), or pass a fixed rule=NUMBER"))
    if kind == "quantile":
        value, words = _quantile(normal, x)
    elif kind == "fpr":
        value, words = _quantile(normal, 1 - x)
    elif kind == "mean_std":
        value = float(normal.mean() + x * normal.std())
        words = f"{x:g} standard deviations above the mean normal val score"
    elif kind == "mad":
        med = float(np.median(normal))
        value = med + 3 * 1.4826 * float(np.median(np.abs(normal - med)))
        words = "3 robust standard deviations (1.4826 x MAD) above the median normal val score"
    elif kind == "max_f1":
        value = _max_f1(scores, labels)
        words = "the best F1 between normal and labelled anomalous val rows"
    elif kind == "recall":
        value = _recall(scores, labels, x)
        words = f"the highest threshold that still flags {100 * x:.3g} % of labelled val anomalies"
    else:
        value, words = float(x), "a fixed score given by rule="
    rule_used = {"quantile": "q{:g}", "fpr": "fpr<={:g}", "mean_std": "mean+{:g}std", "recall": "recall>={:g}"}.get(kind, kind).format(x)
    details = {"rule": rule_used, "asked": asked, "value": value, "meaning": words, "split": "val", "normal": int(len(normal)),
               "anomalies": anomalies}
    if len(normal):
        details["fpr"] = float(np.mean(normal > value))
        details["meaning"] += f" ({100 * details['fpr']:.3g} % of {len(normal)} normal val rows do)"
    if anomalies:
        details.update({k: v for k, v in _counts(scores, labels, value).items() if k != "fpr"})
    return value, details


__all__ = ["EXAMPLE", "choose", "needs_labels", "parse_rule"]
