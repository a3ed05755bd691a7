"""Binary decision threshold: chosen from the validation ROC / precision-recall curves, stored in run.json.

Two-class runs predict the positive class (class index 1, the second class name in sorted order)
when its probability is >= the threshold, instead of argmax (which is a fixed 0.5).

Rules (`threshold=...`):
  auto            the default: max_f1 when the rarer class is under RARE (20 %) of the training rows, else argmax
                  (with balanced enough classes accuracy is what a user compares, and 0.5 is the cut it is best at;
                  BENCHMARKS.md "Two-class decision threshold" has the figures)
  max_f1          the threshold with the highest F1 on the validation split (of equals, the one nearest 0.5;
                  0.5 itself unless the gain over it is larger than two bootstrap standard errors)
  youden          the ROC point with the largest TPR - FPR (Youden's J)
  precision>=X    the lowest threshold whose precision is >= X (so recall is as high as it can be)
  recall>=X       among thresholds whose recall is >= X, the one with the highest precision
  argmax          no threshold: 0.5, the same as argmax
  0.3             a fixed number in (0, 1)

    from kiln.evaluate.threshold import apply_threshold, choose_threshold
    value, details = choose_threshold(y_val, probs_val, "precision>=0.9")
    y_pred = apply_threshold(probs_test, value)

run.json keeps `"threshold": value` (a float, or absent for multi-class runs) and
`"threshold_rule": details` (rule, split, positive class, precision/recall/F1 on that split).
"""

from __future__ import annotations

import logging
import re

import numpy as np

from kiln.errors import ConfigError, received

log = logging.getLogger("kiln.evaluate")

RULE = re.compile(r"^\s*(precision|recall)\s*>=\s*([0-9]*\.?[0-9]+)\s*$")
RARE = 0.2
NAMED = ("auto", "max_f1", "youden", "argmax")
EXAMPLE = "Use threshold=auto, max_f1, youden, precision>=0.9, recall>=0.95, argmax or a number such as 0.3"


def parse_rule(rule) -> tuple[str, float | None]:
    """'precision>=0.9' -> ('precision', 0.9); 'max_f1' -> ('max_f1', None); 0.3 -> ('fixed', 0.3)."""
    if isinstance(rule, bool):
        raise ConfigError(received("threshold", "threshold", rule, "it is not a threshold rule", EXAMPLE))
    if isinstance(rule, (int, float)):
        if not 0.0 < float(rule) < 1.0:
            raise ConfigError(received("threshold", "threshold", rule, "a fixed threshold must lie strictly between 0 and 1", EXAMPLE))
        return "fixed", float(rule)
    text = str(rule).strip()
    if text in NAMED:
        return text, None
    try:
        return parse_rule(float(text))
    except ValueError:
        pass
    m = RULE.match(text)
    if m:
        target = float(m.group(2))
        if not 0.0 < target <= 1.0:
            raise ConfigError(received("threshold", "threshold", rule, f"the {m.group(1)} target must lie in (0, 1]", EXAMPLE))
        return m.group(1), target
    raise ConfigError(received("threshold", "threshold", rule, "it is not a threshold rule", EXAMPLE))


def resolve_rule(rule, y_train) -> tuple[str, str | None]:
    """(the rule `auto` stands for on these training labels, why); any other rule is returned as it is."""
    if str(rule).strip() != "auto":
        return rule, None
    y = np.asarray(y_train, dtype=int)
    share = float(min(np.mean(y == 1), np.mean(y == 0))) if len(y) else 0.5
    if share < RARE:
        return "max_f1", f"auto: the rarer class is {share:.0%} of the training rows (under {RARE:.0%}), so max_f1"
    return "argmax", f"auto: the rarer class is {share:.0%} of the training rows ({RARE:.0%} or more), so 0.5 (argmax)"


def positive_scores(probs) -> np.ndarray:
    """(N, 2) class probabilities or (N,) positive-class probabilities -> (N,) positive-class probabilities."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 2:
        if probs.shape[1] != 2:
            raise ValueError(f"a decision threshold needs two classes, got probabilities of shape {probs.shape}")
        return probs[:, 1]
    return probs


def apply_threshold(probs, threshold: float | None) -> np.ndarray:
    """Predicted class indices: argmax when threshold is None (or the run is not binary), else p1 >= threshold."""
    probs = np.asarray(probs)
    if threshold is None or (probs.ndim == 2 and probs.shape[1] != 2):
        return probs.argmax(axis=1).astype(int) if probs.ndim == 2 else (probs >= 0.5).astype(int)
    return (positive_scores(probs) >= float(threshold)).astype(int)


def _between(scores: np.ndarray, t: float) -> float:
    """Midway between t and the next lower score: the same decisions on this split, a margin for new data."""
    lower = scores[scores < t]
    return float((t + lower.max()) / 2) if len(lower) else float(t)


def _lower(scores: np.ndarray, t: float) -> float:
    """The next score below t (-inf if none): thresholds in (this, t] make the same decisions as t."""
    lower = scores[scores < t]
    return float(lower.max()) if len(lower) else float("-inf")


def _f1(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """F1 of the positive class along the last axis (rows of resamples)."""
    tp = np.sum(pred & (y == 1), axis=-1)
    return np.where(tp > 0, 2 * tp / np.maximum(np.sum(pred, axis=-1) + np.sum(y == 1, axis=-1), 1), 0.0)


def _f1_gain(y: np.ndarray, s: np.ndarray, t: float, resamples: int = 500) -> tuple[float, float]:
    """(F1 at t minus F1 at 0.5 on this split, its paired bootstrap standard error).

    Why: max_f1 picks the best of many thresholds on the same rows, so its gain over argmax is optimistic;
    on a small val split one row moves it far (breast cancer, 57 val rows, seed 3: 0.88 for +0.023 F1, one
    false positive fewer, which cost two test rows of 57 against argmax's). The caller keeps 0.5 unless the
    gain clears two standard errors (about a one-sided 5 % test): a net gain of k rows has a ratio near
    sqrt(k), so one row (ratio ~1.0 there) never moves the threshold and about four do. Seeded: reproducible."""
    gain = float(_f1(y, s >= t) - _f1(y, s >= 0.5))
    idx = np.random.default_rng(0).integers(0, len(y), size=(resamples, len(y)))
    yb, sb = y[idx], s[idx]
    return gain, float(np.std(_f1(yb, sb >= t) - _f1(yb, sb >= 0.5)))


def _stats(y: np.ndarray, s: np.ndarray, t: float) -> dict:
    pred = s >= t
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fpr = fp / (fp + tn) if fp + tn else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "fpr": fpr, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def choose_threshold(y_true, probs, rule="max_f1", y_train=None) -> tuple[float, dict]:
    """(threshold, details) for a binary problem; y_true holds 0/1 (1 = positive class). `auto` decides from
    `y_train` (the training labels; y_true when not given)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    parse_rule(rule)
    y = np.asarray(y_true, dtype=int)
    resolved, why = resolve_rule(rule, y if y_train is None else y_train)
    kind, target = parse_rule(resolved)
    s = positive_scores(probs)
    details: dict = {"rule": str(rule), "n": int(len(y)), **({"auto": why} if why else {})}
    if kind == "fixed":
        value = float(target)
    elif kind == "argmax":
        value = 0.5
    elif len(np.unique(y)) < 2:
        log.warning("threshold: the split holds one class only, so %s cannot be chosen; using 0.5", rule)
        value, details["fallback"] = 0.5, "one class only"
    elif kind == "youden":
        fpr, tpr, thr = roc_curve(y, s)
        finite = np.isfinite(thr)
        j = (tpr - fpr)[finite]
        value = _between(s, float(thr[finite][int(np.argmax(j))]))
    else:
        precision, recall, thr = precision_recall_curve(y, s)
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        if kind == "max_f1":
            f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
            best = np.flatnonzero(f1 >= f1.max() - 1e-12)
            if any(_lower(s, float(thr[b])) < 0.5 <= float(thr[b]) for b in best):  # argmax's decisions are among the best
                value = 0.5
                details.update({"value": value, **_stats(y, s, value), "plateau": "0.5 is among the best thresholds"})
                return value, details
            # F1 is often flat over a range on a small split (every threshold between two classes' scores): of the
            # best, the one nearest argmax's 0.5, not the lowest, which sits against the negatives' top score
            points = [_between(s, float(thr[b])) for b in best]
            i = int(best[int(np.argmin([abs(t - 0.5) for t in points]))])
            tuned = _between(s, float(thr[i]))
            gain, se = _f1_gain(y, s, tuned)
            if gain <= 2 * se:
                details.update({"value": 0.5, **_stats(y, s, 0.5), "kept_argmax": f"max_f1's threshold {tuned:.4f} "
                                f"gained {gain:.4f} F1 on this split, within two bootstrap standard errors ({se:.4f} each)"})
                return 0.5, details
        else:
            have = precision if kind == "precision" else recall
            ok = np.flatnonzero(have >= target - 1e-12)
            if len(ok) == 0:
                log.warning("threshold: no threshold reaches %s>=%s on this split; using the one with the highest %s",
                            kind, target, kind)
                details["met"] = False
                i = int(np.argmax(have))
            else:
                details["met"] = True
                # thresholds ascend and recall falls with them: precision>=X takes the lowest qualifying one (most
                # recall); precision is not monotonic, so recall>=X takes the most precise (ties: the highest)
                i = int(ok[0]) if kind == "precision" else int(ok[::-1][np.argmax(precision[ok][::-1])])
        value = _between(s, float(thr[i]))
    value = float(min(max(value, 1e-7), 1.0))
    details.update({"value": value, **_stats(y, s, value)})
    return value, details


def run_threshold(run_or_meta) -> float | None:
    """The stored threshold of a run (a `Run` or its run.json dict); None when the run decides by argmax."""
    meta = run_or_meta if isinstance(run_or_meta, dict) else run_or_meta.meta
    value = meta.get("threshold")
    return None if value is None else float(value)


def learned_threshold(classes, y_val, probs_val, rule, split: str = "val", y_train=None) -> dict:
    """The run.json keys of a two-class run's threshold chosen on its val split ("threshold": None for rule=argmax, and
    for `auto` when it means argmax on these training labels), for a task's `after_fit` to return (the trainer writes them)."""
    value, details = choose_threshold(y_val, probs_val, rule, y_train)
    details.update({"split": split, "positive_class": classes[1], "negative_class": classes[0]})
    log.info("threshold: %s on %s -> %.4f (precision %.3f, recall %.3f)", rule, split, value, details["precision"], details["recall"])
    argmax = parse_rule(resolve_rule(rule, y_val if y_train is None else y_train)[0])[0] == "argmax"
    return {"threshold": None if argmax else value, "threshold_rule": details}


__all__ = ["RARE", "apply_threshold", "choose_threshold", "parse_rule", "positive_scores", "learned_threshold", "resolve_rule", "run_threshold"]
