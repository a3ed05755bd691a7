"""Verify an export in its own runtime against the Keras model: same inputs, same figures.

    figures = compare(keras_predictor, export_predictor, inputs, y, task.parity)
    figures["agreement"]  # the task's share of inputs on which the two agree

`inputs` is what the task's signature takes: one array `(N, ...)`, or a dict of them by input name;
`y` the targets. Predictors take the same and return the first output `(N, ...)`.
"""

from __future__ import annotations

import time

import numpy as np


def count(inputs) -> int:
    return len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)


def take(inputs, index):
    """Rows `index` (a slice or an index array) of an array or of every array in a dict."""
    if isinstance(inputs, dict):
        return {k: v[index] for k, v in inputs.items()}
    return inputs[index]


def predict_all(predictor, inputs, batch_size: int = 64) -> np.ndarray:
    """The first output for every row, in batches."""
    n = count(inputs)
    return np.concatenate([predictor(take(inputs, slice(i, i + batch_size))) for i in range(0, n, batch_size)])


def latency_ms(predictor, inputs, runs: int = 30, warmup: int = 3) -> float:
    """Median wall time of one single-row call, in milliseconds."""
    n = count(inputs)
    one = take(inputs, slice(0, 1))
    for _ in range(warmup):
        predictor(one)
    times = []
    for i in range(runs):
        x = take(inputs, slice(i % n, i % n + 1))
        t = time.perf_counter()
        predictor(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def throughput(predictor, inputs, batch_size: int = 32, runs: int = 5, warmup: int = 1) -> float:
    """Rows per second at `batch_size` (the rows are repeated when fewer)."""
    batch = take(inputs, np.resize(np.arange(count(inputs)), batch_size))
    for _ in range(warmup):
        predictor(batch)
    t = time.perf_counter()
    for _ in range(runs):
        predictor(batch)
    return float(batch_size * runs / (time.perf_counter() - t))


def compare(reference, candidate, inputs, y, figures, timing: dict | None = None) -> dict:
    """`figures(reference outputs, candidate outputs, y)` (the task's parity: agreement, accuracy, differences)
    plus the latency and throughput of both."""
    timing = timing or {}
    result = {"n": int(count(inputs)), **figures(predict_all(reference, inputs), predict_all(candidate, inputs), y)}
    runs = timing.get("latency_runs", 30)
    batch = timing.get("batch_size", 32)
    batch_runs = timing.get("batch_runs", 5)
    result["latency_ms"] = latency_ms(candidate, inputs, runs)
    result["keras_latency_ms"] = latency_ms(reference, inputs, runs)
    result["throughput"] = throughput(candidate, inputs, batch, batch_runs)
    result["keras_throughput"] = throughput(reference, inputs, batch, batch_runs)
    result["batch_size"] = batch
    return result
