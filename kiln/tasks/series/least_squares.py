"""The linear family's starting weights, solved by least squares on the training windows.

Why: the linear model is an autoregression, whose best weights have a closed form. Gradient descent gets
there slowly because neighbouring lags of a smooth series are nearly collinear: on Seattle's hourly windows
20,000 Adam steps left it at test MASE 0.478 where the least-squares weights of the same model score ~0.43.
So the head starts at the solution of the model's own problem (ridge-regularised, through the model's own
scaling, centring and seasonal-naive layers, so what is solved is exactly what the model computes); training
then only refines it on the compiled loss, and early stopping keeps the better of the two.

The sums are accumulated a chunk of windows at a time ((F+1)^2 float64 for F = lookback x channels inputs),
so a million-row series costs no more than one chunk beyond the sums.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("kiln.series")

MAX_FEATURES = 4096  # beyond this the normal equations ((F+1)^2 float64) would cost more than they save
RIDGE = 1e-4  # times the mean diagonal of the normal equations: keeps collinear lags solvable, shrinks nothing else


def linear_members(model) -> list:
    """The linear-family models inside `model` (itself, or members of an ensemble)."""
    members = getattr(model, "members", None) or [model]
    return [m for m in members if m.name.startswith("linear") and _head(m) is not None]


def _head(m):
    try:
        return m.get_layer("head")
    except ValueError:
        return None


def _probe(m):
    """A model from the linear model's input to (flattened centred window, level and spread, seasonal naive)."""
    import keras

    flat = next(layer for layer in m.layers if isinstance(layer, keras.layers.Flatten))
    center, naive = m.get_layer("center"), m.get_layer("seasonal_naive")
    return keras.Model(m.inputs, [flat.output, center.output[1], naive.output])


def _chunks(probe, w, starts, spec, chunk: int):
    """(features with a bias column, sqrt-weights, normalised targets) a chunk of windows at a time."""
    mean, std = spec.mean[0], spec.std[0]
    for i in range(0, len(starts), chunk):
        s = starts[i:i + chunk]
        x, y = w.arrays(s)
        z, level, naive = (np.asarray(a, np.float64) for a in probe.predict_on_batch(x.astype(np.float32)))
        spread = level[:, 1:] if level.shape[1] == 2 else np.ones((len(s), 1))
        target = ((y - mean) / std - naive) / spread  # what the head's output must be, before Forecast scales it back
        yield np.hstack([z, np.ones((len(s), 1))]), spread, target


def warm_start(model, w, starts: np.ndarray, spec, chunk: int = 4096) -> list[dict]:
    """Set the head of every linear model inside `model` to its least-squares solution on the windows at
    `starts` (weighted by each window's spread squared: the squared error of the forecast itself, in the
    target's scaled units). With quantiles, every quantile starts on the point solution shifted by that
    quantile of the residuals. Returns what was done, one dict per linear model."""
    done = []
    for m in linear_members(model):
        head = _head(m)
        kernel, bias = head.get_weights()
        F, Q, H = kernel.shape[0], max(len(spec.quantiles), 1), spec.horizon
        if F + 1 > MAX_FEATURES or not len(starts):
            log.info("series: %s trains from random weights (%d inputs, %d windows)", m.name, F, len(starts))
            continue
        probe = _probe(m)
        gram, rhs = np.zeros((F + 1, F + 1)), np.zeros((F + 1, H))
        for a, sw, t in _chunks(probe, w, starts, spec, chunk):
            a, t = a * sw, t * sw
            gram += a.T @ a
            rhs += a.T @ t
        ridge = RIDGE * float(np.mean(np.diag(gram))) * np.eye(F + 1)
        ridge[F, F] = 0.0  # the bias is not shrunk
        try:
            sol = np.linalg.solve(gram + ridge, rhs)  # (F+1, H)
        except np.linalg.LinAlgError:
            log.info("series: %s trains from random weights (the normal equations are singular)", m.name)
            continue
        offsets = np.zeros((H, Q))
        if len(spec.quantiles):
            resid = np.concatenate([t - a @ sol for a, _, t in _chunks(probe, w, starts, spec, chunk)])
            offsets = np.quantile(resid, spec.quantiles, axis=0).T  # (H, Q)
        new_kernel = np.repeat(sol[:F], Q, axis=1)  # column h*Q + q, as Forecast reshapes (H*Q) to (H, Q)
        new_bias = (sol[F][:, None] + offsets).reshape(-1)
        head.set_weights([new_kernel.astype(kernel.dtype), new_bias.astype(bias.dtype)])
        done.append({"model": m.name, "windows": int(len(starts)), "inputs": int(F), "ridge": RIDGE})
    return done


__all__ = ["MAX_FEATURES", "RIDGE", "linear_members", "warm_start"]
