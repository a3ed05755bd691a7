"""Training curves and confusion-matrix heatmap as PNG files (matplotlib Agg, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kiln.io import atomic_path  # noqa: E402


def _save(fig, dest: Path) -> Path:
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return dest


def plot_history(history: pd.DataFrame, out_dir: Path, metrics=("loss", "accuracy")) -> list[Path]:
    """<metric>.png for each history column in `metrics` (the run's loss and headline metrics): train vs val per epoch."""
    written = []
    x = history["epoch"] + 1 if "epoch" in history else np.arange(1, len(history) + 1)
    for metric in metrics:
        if metric not in history:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(x, history[metric], label=f"train {metric}")
        if f"val_{metric}" in history:
            ax.plot(x, history[f"val_{metric}"], label=f"val {metric}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(f"{metric} per epoch")
        written.append(_save(fig, out_dir / f"{metric}.png"))
    return written


def plot_confusion(matrix, classes: list[str], dest: Path, title: str = "confusion matrix") -> Path:
    import seaborn as sns

    matrix = np.asarray(matrix)
    side = max(4.0, 0.5 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(side, side * 0.85))
    sns.heatmap(matrix, annot=len(classes) <= 20, fmt="d", cmap="Blues", xticklabels=classes, yticklabels=classes,
                cbar=True, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, dest)
