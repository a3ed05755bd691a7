"""Verify an export in its own runtime against the Keras model: same images, same figures.

    figures = compare(keras_predictor, export_predictor, images, y)
    figures["agreement"]  # share of images whose top-1 class is the same

Images are uint8 `(N, H, W, C)` decoded by the training pipeline; `y` their integer labels.
"""

from __future__ import annotations

import time

import numpy as np


def predict_all(predictor, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(N, K) probabilities in batches."""
    return np.concatenate([predictor(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def latency_ms(predictor, images: np.ndarray, runs: int = 30, warmup: int = 3) -> float:
    """Median wall time of one single-image call, in milliseconds."""
    one = images[:1]
    for _ in range(warmup):
        predictor(one)
    times = []
    for i in range(runs):
        x = images[i % len(images):i % len(images) + 1]
        t = time.perf_counter()
        predictor(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def throughput(predictor, images: np.ndarray, batch_size: int = 32, runs: int = 5, warmup: int = 1) -> float:
    """Images per second at `batch_size` (the images are tiled when fewer)."""
    batch = np.resize(images, (batch_size, *images.shape[1:])).astype(np.uint8)
    for _ in range(warmup):
        predictor(batch)
    t = time.perf_counter()
    for _ in range(runs):
        predictor(batch)
    return float(batch_size * runs / (time.perf_counter() - t))


def compare(reference, candidate, images: np.ndarray, y: np.ndarray, timing: dict | None = None) -> dict:
    """Agreement, probability differences and accuracy of `candidate` against `reference` (the Keras model)."""
    timing = timing or {}
    ref = predict_all(reference, images)
    got = predict_all(candidate, images)
    y = np.asarray(y, dtype=int)
    diff = np.abs(got - ref)
    figures = {
        "n": int(len(images)),
        "agreement": float(np.mean(got.argmax(1) == ref.argmax(1))),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "accuracy": float(np.mean(got.argmax(1) == y)),
        "keras_accuracy": float(np.mean(ref.argmax(1) == y)),
    }
    runs = timing.get("latency_runs", 30)
    batch = timing.get("batch_size", 32)
    batch_runs = timing.get("batch_runs", 5)
    figures["latency_ms"] = latency_ms(candidate, images, runs)
    figures["keras_latency_ms"] = latency_ms(reference, images, runs)
    figures["throughput"] = throughput(candidate, images, batch, batch_runs)
    figures["keras_throughput"] = throughput(reference, images, batch, batch_runs)
    figures["batch_size"] = batch
    return figures
