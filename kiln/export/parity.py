"""Verify an export in its own runtime against the Keras model: same inputs, same figures.

A task's `parity` is usually `class_parity` (agreement = the same top class) or `value_parity` (agreement = within a
relative tolerance): both name their quality metric ("metric", "score", "keras_score") and their agreement rule.

    figures = compare(keras_predictor, export_predictor, inputs, y, task.parity)
    figures["agreement"]  # the task's share of inputs on which the two agree

`inputs` is what the task's signature takes: one array `(N, ...)`, or a dict of them by input name;
`y` the targets. Predictors take the same and return the first output `(N, ...)`.
"""

from __future__ import annotations

import time

import numpy as np


def class_parity(reference, candidate, y) -> dict:
    """Class outputs (N, K): the share of rows whose top class is the same, and each side's accuracy."""
    ref, cand, y = np.asarray(reference, np.float64), np.asarray(candidate, np.float64), np.asarray(y, dtype=int)
    diff = np.abs(cand - ref)
    return {"agreement": float(np.mean(cand.argmax(-1) == ref.argmax(-1))), "agreement_rule": "same top class",
            "metric": "accuracy", "direction": "max", "score": float(np.mean(cand.argmax(-1) == y)),
            "keras_score": float(np.mean(ref.argmax(-1) == y)),
            "max_abs_diff": float(diff.max()) if diff.size else 0.0, "mean_abs_diff": float(diff.mean()) if diff.size else 0.0}


def value_parity(reference, candidate, y, rtol: float = 1e-3, point=None) -> dict:
    """Value outputs (N, ...): the share of rows whose every value is within `rtol` of the target's spread
    (std, else mean |y|), and each side's MAE; `point(outputs)` picks the point forecast of a wider output."""
    ref, cand, y = (np.asarray(a, np.float64) for a in (reference, candidate, y))
    diff = np.abs(ref - cand).reshape(len(ref), -1)
    tol = rtol * (float(np.std(y)) or float(np.mean(np.abs(y))) or 1.0)
    pick = point or (lambda p: p)
    mae = lambda p: float(np.mean(np.abs(pick(p).reshape(y.shape) - y)))  # noqa: E731
    return {"agreement": float(np.mean(diff.max(1) <= tol)) if diff.size else 1.0,
            "agreement_rule": f"every value within {rtol:g} x the target's spread", "metric": "MAE", "direction": "min",
            "score": mae(cand), "keras_score": mae(ref),
            "max_abs_diff": float(diff.max()) if diff.size else 0.0, "mean_abs_diff": float(diff.mean()) if diff.size else 0.0}


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


def outputs_all(predictor, inputs, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Every named output for every row, in batches."""
    n = count(inputs)
    parts = [predictor.outputs(take(inputs, slice(i, i + batch_size))) for i in range(0, n, batch_size)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def per_output(reference, candidate, inputs, y, figures) -> dict:
    """A signature with several named outputs: the task's figures on the first, and for every other output the
    agreement of its values (within 1e-3 of the reference's spread) and their differences; the export passes only
    when every output agrees (`agreement` is the lowest)."""
    ref, cand = outputs_all(reference, inputs), outputs_all(candidate, inputs)
    names = list(ref)
    result = figures(ref[names[0]], cand[names[0]], y)
    each = {names[0]: {k: result[k] for k in ("agreement", "max_abs_diff", "mean_abs_diff")}}
    for name in names[1:]:
        v = value_parity(ref[name], cand[name], ref[name])
        each[name] = {k: v[k] for k in ("agreement", "max_abs_diff", "mean_abs_diff")}
    result["outputs"] = each
    result["agreement"] = min(o["agreement"] for o in each.values())
    return result


def compare(reference, candidate, inputs, y, figures, timing: dict | None = None) -> dict:
    """`figures(reference outputs, candidate outputs, y)` (the task's parity: agreement, accuracy, differences; for a
    signature with several outputs, per output: `per_output`) plus the latency and throughput of both."""
    timing = timing or {}
    if len(getattr(reference, "output_names", ())) > 1:
        result = {"n": int(count(inputs)), **per_output(reference, candidate, inputs, y, figures)}
    else:
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
