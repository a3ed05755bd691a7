"""The anomaly report's figures: score histograms with the threshold, ROC and PR curves, the series with its
flagged windows shaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_plots(run, scores: dict, threshold) -> None:
    """plots/scores.png (normal vs anomalous score histograms with the threshold) and roc_pr.png when labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    split = "test" if "test" in scores else "val" if "val" in scores else None
    if split is None:
        return
    s, y = scores[split]
    out = Path(run.path) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.histogram_bin_edges(s, 40)
    ax.hist(s[y != 1], bins, alpha=0.6, label=f"normal ({int((y != 1).sum())})", color="C0")
    if (y == 1).any():
        ax.hist(s[y == 1], bins, alpha=0.6, label=f"anomalous ({int((y == 1).sum())})", color="C3")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.4g}")
    ax.set_yscale("log")
    ax.set_xlabel("score (reconstruction error)")
    ax.set_title(f"{split} scores")
    ax.legend(fontsize=8)
    fig.savefig(out / "scores.png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    if (y == 1).any() and (y == 0).any():
        fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
        fpr, tpr, _ = roc_curve(y[y >= 0], s[y >= 0])
        a.plot(fpr, tpr)
        a.plot([0, 1], [0, 1], "k:", lw=0.8)
        a.set_xlabel("false positive rate")
        a.set_ylabel("true positive rate")
        a.set_title("ROC")
        p, r, _ = precision_recall_curve(y[y >= 0], s[y >= 0])
        b.plot(r, p)
        b.set_xlabel("recall")
        b.set_ylabel("precision")
        b.set_title("precision-recall")
        fig.tight_layout()
        fig.savefig(out / "roc_pr.png", dpi=80)
        plt.close(fig)


def series_plot(run, frame, spec, starts: np.ndarray, scores: np.ndarray, threshold) -> None:
    """plots/series.png: the test stretch of each channel (at most 3), flagged windows shaded, labelled anomalous steps marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not len(starts):
        return
    lo, hi = int(starts[0]), int(starts[-1]) + spec.window
    t = frame["time"].to_numpy()[lo:hi]
    cols = spec.columns[:3]
    fig, axes = plt.subplots(len(cols), 1, figsize=(9, 1.8 * len(cols) + 0.6), sharex=True, squeeze=False)
    flagged = starts[scores > threshold] if threshold is not None else starts[:0]
    lab = frame["_anomaly"].to_numpy()[lo:hi] == 1 if "_anomaly" in frame.columns else np.zeros(hi - lo, bool)
    for ax, c in zip(axes[:, 0], cols):
        v = frame[c].to_numpy()[lo:hi]
        ax.plot(t, v, color="k", lw=0.8)
        for s in flagged:
            ax.axvspan(frame["time"].iloc[int(s)], frame["time"].iloc[int(s) + spec.window - 1], color="C3", alpha=0.06, lw=0)
        if lab.any():
            ax.scatter(t[lab], v[lab], s=8, color="C3", zorder=3, label="labelled anomalous")
        ax.set_ylabel(c)
    axes[0, 0].set_title(f"test: {len(flagged)} of {len(starts)} windows flagged (shaded)")
    fig.autofmt_xdate()
    fig.savefig(Path(run.path) / "plots" / "series.png", dpi=80, bbox_inches="tight")
    plt.close(fig)


def worst_images(run, x: np.ndarray, errs: np.ndarray, scores: np.ndarray, y: np.ndarray, spec, k: int = 8) -> None:
    """plots/worst.png: the k highest-scoring test images above their per-pixel error maps (where the model failed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = np.argsort(-scores)[:k]
    if not len(top):
        return
    fig, axes = plt.subplots(2, len(top), figsize=(1.4 * len(top), 3.1), squeeze=False)
    for j, i in enumerate(top):
        img = x[i][:, :, 0] if spec.channels == 1 else x[i]
        axes[0, j].imshow(img, cmap="gray" if spec.channels == 1 else None)
        axes[0, j].set_title(f"{scores[i]:.3g}" + (" A" if y[i] == 1 else ""), fontsize=7)
        axes[1, j].imshow(errs[i].reshape(spec.size, spec.size, spec.channels).mean(-1), cmap="magma")
        for a in axes[:, j]:
            a.axis("off")
    fig.suptitle("highest-scoring test images (A: labelled anomalous) and their error maps", fontsize=8)
    out = Path(run.path) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "worst.png", dpi=80, bbox_inches="tight")
    plt.close(fig)


__all__ = ["series_plot", "worst_images", "write_plots"]
