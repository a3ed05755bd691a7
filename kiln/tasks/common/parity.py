"""Export parity for tasks whose model returns class probabilities (images, texts): the share of inputs on which an
export picks the same class as the Keras model, the largest probability difference, and both accuracies."""

from __future__ import annotations

import numpy as np


def agreement(ref: np.ndarray, got: np.ndarray, y) -> dict:
    """Top-1 agreement, probability differences and accuracy of the export (`got`) against Keras (`ref`)."""
    y = np.asarray(y, dtype=int)
    diff = np.abs(got - ref)
    return {
        "agreement": float(np.mean(got.argmax(1) == ref.argmax(1))),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "accuracy": float(np.mean(got.argmax(1) == y)),
        "keras_accuracy": float(np.mean(ref.argmax(1) == y)),
    }


__all__ = ["agreement"]
