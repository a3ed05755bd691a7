"""Can the probabilities be trusted? Reliability bins and expected calibration error (ECE).

Top-label calibration (Guo et al., 2017): each prediction's confidence is its largest probability,
it is correct when that class is the true one. Confidences fall into `n_bins` equal-width bins
B_m = ((m-1)/M, m/M] (the first bin also holds 0). Then

    ECE = sum_m |B_m| / n * |accuracy(B_m) - confidence(B_m)|
    MCE = max_m |accuracy(B_m) - confidence(B_m)|   over non-empty bins

    from kiln.evaluate.calibration import expected_calibration_error, reliability_bins
    expected_calibration_error(y_test, probs_test)   # 0.0 is perfectly calibrated
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _confidence(y_true, probs, predicted=None) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=int)
    if probs.ndim != 2 or len(probs) != len(y):
        raise ValueError(f"probs must be (N, K) with N={len(y)}, got shape {probs.shape}")
    pred = probs.argmax(axis=1) if predicted is None else np.asarray(predicted, dtype=int)
    confidence = probs[np.arange(len(y)), pred]
    return confidence, (pred == y).astype(np.float64)


def reliability_bins(y_true, probs, n_bins: int = 15, predicted=None) -> list[dict]:
    """One dict per bin: lower, upper, count, confidence (mean), accuracy (mean); empty bins have None means.

    `predicted` (optional) overrides argmax, e.g. the class a stored binary threshold chooses.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    confidence, correct = _confidence(y_true, probs, predicted)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin m holds (edges[m], edges[m+1]]; np.digitize with right=True does exactly that, 0 goes to bin 0
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    for m in range(n_bins):
        mask = index == m
        n = int(mask.sum())
        bins.append({"lower": float(edges[m]), "upper": float(edges[m + 1]), "count": n,
                     "confidence": float(confidence[mask].mean()) if n else None,
                     "accuracy": float(correct[mask].mean()) if n else None})
    return bins


def expected_calibration_error(y_true, probs, n_bins: int = 15, predicted=None) -> float:
    """Sum over bins of (bin share) x |accuracy - confidence|; 0 when the model is calibrated."""
    bins = reliability_bins(y_true, probs, n_bins, predicted)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return 0.0
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def calibration_summary(y_true, probs, n_bins: int = 15, predicted=None) -> dict:
    """ECE, MCE, mean confidence, accuracy and the bins: what the report shows."""
    bins = reliability_bins(y_true, probs, n_bins, predicted)
    confidence, correct = _confidence(y_true, probs, predicted)
    gaps = [abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]]
    return {"n_bins": n_bins, "ece": expected_calibration_error(y_true, probs, n_bins, predicted),
            "mce": float(max(gaps)) if gaps else 0.0,
            "mean_confidence": float(confidence.mean()) if len(confidence) else 0.0,
            "accuracy": float(correct.mean()) if len(correct) else 0.0, "bins": bins}


def plot_reliability(summary: dict, dest: Path, title: str = "reliability diagram") -> Path:
    """The reliability diagram as a PNG file."""
    from kiln.evaluate.plots import _save

    return _save(reliability_figure(summary, title), dest)


def reliability_figure(summary: dict, title: str = "reliability diagram"):
    """Bars of accuracy per confidence bin against the diagonal, with a histogram of confidences below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = summary["bins"]
    width = bins[0]["upper"] - bins[0]["lower"]
    centres = [b["lower"] + width / 2 for b in bins]
    acc = [b["accuracy"] or 0.0 for b in bins]
    conf = [b["confidence"] if b["count"] else c for b, c in zip(bins, centres)]
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.bar(centres, acc, width=width, edgecolor="black", color="#4c72b0", label="accuracy")
    ax.bar(centres, [c - a if b["count"] else 0 for a, c, b in zip(acc, conf, bins)], bottom=acc, width=width,
           color="#dd8452", alpha=0.5, edgecolor="#dd8452", hatch="//", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{title}  (ECE {summary['ece']:.3f}, MCE {summary['mce']:.3f})")
    hist.bar(centres, [b["count"] for b in bins], width=width, color="grey", edgecolor="black")
    hist.set_xlabel("confidence (top-class probability)")
    hist.set_ylabel("count")
    fig.tight_layout()
    return fig


__all__ = ["calibration_summary", "expected_calibration_error", "plot_reliability", "reliability_bins", "reliability_figure"]
