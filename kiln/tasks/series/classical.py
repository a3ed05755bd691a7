"""The M-competitions' classical forecasters as baselines: Theta and an autoregression ordered by AIC, plus the
mean of them with seasonal naive and damped Holt-Winters (the combination the M4 lessons recommend).

Like Holt-Winters in baselines.py, each is fitted once per series on the history before the scored stretch (its
last `FIT_TAIL` steps at most, so a long hourly series costs what a few months cost) and then run forward with
those parameters: at each origin it forecasts from the state it had reached, with no refit and no look-ahead.
Refitting at each of up to 500 origins is what statsmodels' own classes would need; `bench/series.py` does that
for its late origins, and the fixed-parameter versions here track it closely.

    theta  Hyndman & Billah's form of the Theta method (the M3 winner): simple exponential smoothing of the
           deseasonalised series plus half the slope of its least-squares line, reseasonalised (classical
           decomposition, multiplicative when every value is positive); alpha fitted by statsmodels
    ar     statsmodels AutoReg with a constant, its lags chosen by `ar_select_order` (AIC, up to two seasons or
           `MAX_LAGS`), iterated forward from each origin
    mean   the mean of seasonal naive, Holt-Winters, Theta and AR where each has a forecast
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

FIT_TAIL = 4000  # steps of history a classical baseline is fitted on, at most
MAX_LAGS = 60


def _filled(y: np.ndarray) -> np.ndarray:
    """Missing values carried forward (causal), the first ones back-filled from the first value."""
    if np.isfinite(y).all():
        return y
    return pd.Series(y).ffill().fillna(float(y[np.isfinite(y)][0])).to_numpy()


def seasonal_index(y: np.ndarray, m: int) -> tuple[np.ndarray, bool]:
    """(m,) seasonal factors of `y` by classical decomposition (phase 0 = y's first step), and whether they
    multiply (every value positive) or add; ones / zeros when there is no season or too little history."""
    from statsmodels.tsa.seasonal import seasonal_decompose

    mul = bool((y > 0).all())
    if m < 2 or len(y) < 2 * m + 1:
        return (np.ones(max(m, 1)) if mul else np.zeros(max(m, 1))), mul
    d = seasonal_decompose(y, period=m, model="multiplicative" if mul else "additive", two_sided=True)
    return np.asarray(d.seasonal[:m], np.float64), mul


def theta(values, origins, bounds, H, m, ends, fit_ends, max_series: int = 50) -> np.ndarray:
    """(N, H) Theta forecasts from each origin; NaN rows for series past `max_series` or with too little history."""
    from scipy.signal import lfilter
    from statsmodels.tsa.holtwinters import SimpleExpSmoothing

    out = np.full((len(origins), H), np.nan)
    for k, a in enumerate(np.unique(bounds)):
        rows = np.flatnonzero(bounds == a)
        end, fit_end = int(ends[rows[0]]), int(fit_ends[rows[0]])
        start = max(a, fit_end - FIT_TAIL)
        if k >= max_series or fit_end - start < 8 or not np.isfinite(values[start:end]).any():
            continue
        y = _filled(values[start:end].astype(np.float64))
        n_fit = fit_end - start
        season, mul = seasonal_index(y[:n_fit], m)
        phase = np.arange(len(y) + H) % len(season)
        s = season[phase]
        z = y / s[: len(y)] if mul else y - s[: len(y)]
        b0 = float(np.polyfit(np.arange(n_fit), z[:n_fit], 1)[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = SimpleExpSmoothing(z[:n_fit], initialization_method="estimated").fit()
        alpha = float(np.clip(fit.params["smoothing_level"], 1e-3, 1.0))
        level = lfilter([alpha], [1.0, alpha - 1.0], z, zi=[(1 - alpha) * float(fit.params["initial_level"])])[0]
        o = origins[rows] - start  # origin index within y
        n = o.astype(np.float64)
        h = np.arange(H, dtype=np.float64)[None] + 1 / alpha - ((1 - alpha) ** n[:, None]) / alpha
        f = level[o - 1][:, None] + 0.5 * b0 * h
        target = o[:, None] + np.arange(H)
        out[rows] = f * s[target] if mul else f + s[target]
    return out


def fit_ar(y: np.ndarray, m: int, max_lag: int = MAX_LAGS) -> tuple[list[int], np.ndarray]:
    """(lags, params: constant then one coefficient per lag) of the AutoReg AIC picks on `y`, up to
    min(two seasons or 12, `max_lag`, a quarter of `y`) lags; ([], [mean]) when it picks none."""
    from statsmodels.tsa.ar_model import AutoReg, ar_select_order

    maxlag = int(min(max(2 * m, 12), max_lag, len(y) // 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lags = list(ar_select_order(y, maxlag, ic="aic", trend="c").ar_lags or []) if maxlag >= 1 else []
        if not lags:
            return [], np.array([float(np.mean(y))])
        return lags, np.asarray(AutoReg(y, lags=lags, trend="c").fit().params, np.float64)


def ar_matrix(lags: list[int], params: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    """(kernel (p, H), bias (H,)): the AR's H-step forecasts as an exact linear map of its last p = max(lags)
    values (oldest first), the recursion unrolled, so a Keras layer can compute them."""
    p = max(lags, default=0)
    coef = np.zeros((p + 1 + H, p + 1))  # each value as weights on [last p values, 1]
    coef[:p, :p] = np.eye(p)
    coef[:, p] = 0.0
    for h in range(H):
        t = p + h
        row = np.zeros(p + 1)
        row[p] = params[0]
        for c, lag in zip(params[1:], lags):
            row += c * coef[t - lag]
        coef[t] = row
    return coef[p:p + H, :p].T.copy(), coef[p:p + H, p].copy()


def ar(values, origins, bounds, H, m, ends, fit_ends, max_series: int = 50) -> np.ndarray:
    """(N, H) forecasts of an AutoReg whose lags AIC chose, iterated from each origin."""
    out = np.full((len(origins), H), np.nan)
    for k, a in enumerate(np.unique(bounds)):
        rows = np.flatnonzero(bounds == a)
        end, fit_end = int(ends[rows[0]]), int(fit_ends[rows[0]])
        start = max(a, fit_end - FIT_TAIL)
        n_fit = fit_end - start
        if k >= max_series or n_fit < 12 or not np.isfinite(values[start:end]).any():
            continue
        y = _filled(values[start:end].astype(np.float64))
        lags, params = fit_ar(y[:n_fit], m)
        o = origins[rows] - start
        if not lags:  # AIC chose no lag: the fitted mean
            out[rows] = params[0]
            continue
        p = max(lags)
        ok = o >= p
        hist = np.full((len(o), p + H), np.nan)
        hist[ok, :p] = y[o[ok, None] - p + np.arange(p)]
        for h in range(H):
            hist[:, p + h] = params[0] + sum(c * hist[:, p + h - lag] for c, lag in zip(params[1:], lags))
        out[rows] = hist[:, p:]
    return out


def mean_of(forecasts: dict) -> np.ndarray | None:
    """The mean forecast of the members present (NaN where none has one)."""
    members = [forecasts[k] for k in ("seasonal_naive", "holt_winters", "theta", "ar") if k in forecasts]
    if len(members) < 2:
        return None
    stack = np.stack(members)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.where(np.isfinite(stack).all(0), stack.mean(0), np.nan)


__all__ = ["FIT_TAIL", "MAX_LAGS", "ar", "ar_matrix", "fit_ar", "mean_of", "seasonal_index", "theta"]
