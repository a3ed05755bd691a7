"""Figures and small pictures for the image task's report sections (report.py): thumbnails as base64,
the confusion matrix, one-vs-rest ROC / precision-recall curves, the most-confused class pairs."""

from __future__ import annotations

import base64
import io

import numpy as np

from kiln.evaluate.report import plt


def _array_b64(image: np.ndarray, side: int | None = None) -> str:
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    img = Image.fromarray(image.astype(np.uint8))
    if side and max(img.size) < side:
        scale = side // max(img.size)
        if scale > 1:
            img = img.resize((img.size[0] * scale, img.size[1] * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_b64(path: str, side: int = 144, background: str | None = "white") -> str | None:
    """A small PNG of an image file (EXIF-rotated, transparency on `background`), or None when it cannot be read."""
    from PIL import Image, ImageOps

    from kiln.tasks.image.data import alpha

    try:
        with Image.open(path) as img:
            img.seek(0)
            img = ImageOps.exif_transpose(img)
            img = Image.fromarray(alpha.flatten(img, alpha.background_rgb(background), 3))
            if max(img.size) > side:
                img.thumbnail((side, side))
            arr = np.asarray(img)
    except Exception:  # unreadable files are shown as missing, not fatal
        return None
    return _array_b64(arr, side)


# ---------------------------------------------------------------- figures

def confusion_figure(matrix, classes: list[str]):
    import seaborn as sns

    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    k = len(classes)
    side = max(4.0, 0.45 * k + 2.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1, side * 0.85))
    annot = k <= 20
    sns.heatmap(matrix, annot=annot, fmt="d", cmap="Blues", xticklabels=classes, yticklabels=classes, ax=axes[0])
    sns.heatmap(norm, annot=annot, fmt=".2f", cmap="Blues", vmin=0, vmax=1, xticklabels=classes, yticklabels=classes, ax=axes[1])
    for ax, title in zip(axes, ("counts", "normalised by true class (recall on the diagonal)")):
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
    fig.tight_layout()
    return fig


def curves_figure(y: np.ndarray, probs: np.ndarray, classes: list[str], threshold: float | None = None):
    """One-vs-rest ROC and precision-recall curves (at most 12 classes drawn: the lowest-AUC ones)."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    k = len(classes)
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(11, 4.4))
    targets = [1] if k == 2 else [c for c in range(k) if 0 < (y == c).sum() < len(y)]
    scored = []
    for c in targets:
        fpr, tpr, _ = roc_curve(y == c, probs[:, c])
        scored.append((auc(fpr, tpr), c, fpr, tpr))
    scored.sort()
    for roc_auc, c, fpr, tpr in scored[:12]:
        roc_ax.plot(fpr, tpr, label=f"{classes[c]} (AUC {roc_auc:.3f})")
        precision, recall, _ = precision_recall_curve(y == c, probs[:, c])
        ap = average_precision_score(y == c, probs[:, c])
        pr_ax.plot(recall, precision, label=f"{classes[c]} (AP {ap:.3f})")
    if k == 2 and threshold is not None and len(targets):
        pred = probs[:, 1] >= threshold
        pos, neg = y == 1, y == 0
        tpr_t = (pred & pos).sum() / max(pos.sum(), 1)
        fpr_t = (pred & neg).sum() / max(neg.sum(), 1)
        prec_t = (pred & pos).sum() / max(pred.sum(), 1)
        roc_ax.plot([fpr_t], [tpr_t], "ko", label=f"threshold {threshold:.3f}")
        pr_ax.plot([tpr_t], [prec_t], "ko", label=f"threshold {threshold:.3f}")
    roc_ax.plot([0, 1], [0, 1], "k:", lw=1)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (one vs rest)")
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall (one vs rest)", ylim=(0, 1.02))
    for ax in (roc_ax, pr_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right" if ax is roc_ax else "lower left")
    note = f" (the {min(12, len(scored))} lowest-AUC of {len(scored)} classes)" if len(scored) > 12 else ""
    fig.tight_layout()
    return fig, note


def most_confused(matrix, classes: list[str], top: int = 10) -> list[dict]:
    matrix = np.asarray(matrix)
    pairs = []
    for t in range(len(classes)):
        total = matrix[t].sum()
        for p in range(len(classes)):
            if t != p and matrix[t, p] > 0:
                pairs.append({"true": classes[t], "predicted": classes[p], "count": int(matrix[t, p]),
                              "share_of_true": float(matrix[t, p] / total) if total else 0.0})
    return sorted(pairs, key=lambda d: (-d["count"], -d["share_of_true"]))[:top]


# ---------------------------------------------------------------- data for the report
