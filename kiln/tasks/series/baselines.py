"""The field's honest baselines on exactly the windows the model is scored on, and the forecast metrics.

    naive            the last value, repeated
    seasonal_naive   the value one season before each step (MASE's own yardstick)
    drift            the line from the series' first value to its last, extended
    holt_winters     statsmodels ExponentialSmoothing (additive damped trend, additive season), fitted on
                     the history before the scored stretch, then run forward with those parameters: at
                     each origin it forecasts from the state it had reached (no refit, no look-ahead); missing values
                     are carried forward for it, which uses no value from after an origin
    theta, ar, mean  Theta, an AR ordered by AIC and the mean of seasonal naive, Holt-Winters, Theta and AR
                     (classical.py), fitted and run forward the same way
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

log = logging.getLogger("kiln.series")
HW_MAX_SERIES = 50  # Holt-Winters fits one model per series: beyond this many series it runs on the first ones


def naive(values, origins, bounds, H, m):
    return np.repeat(values[origins - 1][:, None], H, axis=1)


def seasonal_naive(values, origins, bounds, H, m):
    h = np.arange(H)
    idx = origins[:, None] + h - m * np.ceil((h + 1) / m).astype(int)
    ok = idx >= bounds[:, None]
    out = np.where(ok, values[np.maximum(idx, 0)], np.nan)
    fallback = naive(values, origins, bounds, H, m)
    return np.where(np.isfinite(out), out, fallback)


def drift(values, origins, bounds, H, m):
    out = np.empty((len(origins), H))
    for i, (o, a) in enumerate(zip(origins, bounds)):
        hist = values[a:o]
        first = int(np.argmax(np.isfinite(hist)))
        span = len(hist) - 1 - first
        slope = (hist[-1] - hist[first]) / span if span > 0 else 0.0
        out[i] = hist[-1] + slope * np.arange(1, H + 1)
    return out


def holt_winters(values, origins, bounds, H, m, ends, fit_ends):
    """Per series [a, end): fit on [a, fit_end), filter the whole series with those parameters, forecast from
    each origin's state. NaN rows for series that have missing values or more than HW_MAX_SERIES."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    out = np.full((len(origins), H), np.nan)
    done = 0
    for a in np.unique(bounds):
        rows = np.flatnonzero(bounds == a)
        end, fit_end = int(ends[rows[0]]), int(fit_ends[rows[0]])
        y = values[a:end].astype(np.float64)
        if done >= HW_MAX_SERIES or not np.isfinite(y).any() or fit_end - a < 10:
            continue
        if not np.isfinite(y).all():  # carried forward (causal: no value from after an origin is used)
            y = pd.Series(y).ffill().fillna(float(y[np.isfinite(y)][0])).to_numpy()
        done += 1
        seasonal = "add" if m > 1 and fit_end - a >= 2 * m + 2 else None
        kw = dict(trend="add", damped_trend=True, seasonal=seasonal, seasonal_periods=m if seasonal else None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = ExponentialSmoothing(y[: fit_end - a], initialization_method="estimated", **kw).fit()
            p = fit.params
            full = ExponentialSmoothing(y, initialization_method="known", initial_level=p["initial_level"],
                                        initial_trend=p["initial_trend"],
                                        initial_seasonal=p["initial_seasons"] if seasonal else None, **kw).fit(
                smoothing_level=p["smoothing_level"], smoothing_trend=p["smoothing_trend"],
                smoothing_seasonal=p["smoothing_seasonal"] if seasonal else None, damping_trend=p["damping_trend"], optimized=False)
        out[rows] = hw_forecast(full, origins[rows] - a, H, m if seasonal else 0, p["damping_trend"])
    return out


def hw_forecast(res, origins, H, m, phi):
    """Forecasts of H steps from the states at origins - 1 (additive damped trend, additive season of m)."""
    level, trend = np.asarray(res.level), np.asarray(res.trend)
    damp = np.cumsum(phi ** np.arange(1, H + 1))
    t = origins - 1
    out = level[t][:, None] + trend[t][:, None] * damp
    if m:
        season = np.asarray(res.season)
        h = np.arange(1, H + 1)
        out = out + season[t[:, None] - m + ((h - 1) % m) + 1]
    return out


METHODS = {"naive": naive, "seasonal_naive": seasonal_naive, "drift": drift}


def run_baselines(w, starts, splits_start, season: int, holt: bool = True) -> dict:
    """{name: (N, H) forecasts} on the windows `starts` of `w` (a Windows); `splits_start[i]` is the first row
    of the scored stretch of window i's series (where Holt-Winters stops fitting)."""
    values = w.values[:, 0].astype(np.float64)
    origins = starts + w.lookback
    which = np.searchsorted(w.bounds, starts, side="right") - 1
    bounds, ends = w.bounds[which], w.bounds[which + 1]
    out = {name: fn(values, origins, bounds, w.horizon, season) for name, fn in METHODS.items()}
    if holt:
        from kiln.tasks.series.classical import ar, mean_of, theta

        out["holt_winters"] = holt_winters(values, origins, bounds, w.horizon, season, ends, splits_start)
        out["theta"] = theta(values, origins, bounds, w.horizon, season, ends, splits_start, HW_MAX_SERIES)
        out["ar"] = ar(values, origins, bounds, w.horizon, season, ends, splits_start, HW_MAX_SERIES)
        combined = mean_of(out)
        if combined is not None:
            out["mean"] = combined
    return out


def forecast_metrics(y: np.ndarray, p: np.ndarray, scale: np.ndarray, chunk: int = 8192) -> dict:
    """MAE, RMSE, sMAPE (%), MASE (per-series in-sample seasonal-naive MAE), MAPE when no actual is zero,
    MAE, MASE and sMAPE by horizon step. Rows with a NaN forecast are left out (counted in `windows`). Summed `chunk` rows at a
    time: float64 temporaries of the whole (N, H) array were ~15 MB each, six at once, per method scored."""
    keep = np.isfinite(p).all(1)
    n = int(keep.sum())
    if not n:
        return {"windows": 0}
    H = y.shape[1]
    sums = {"ase": 0.0, "ae": 0.0, "se": 0.0, "smape": 0.0, "ape": 0.0}
    by_step, ase_step, smape_step, zeros = np.zeros(H), np.zeros(H), np.zeros(H), 0
    rows = np.flatnonzero(keep)
    for i in range(0, n, chunk):
        r = rows[i:i + chunk]
        yc, pc, sc = y[r].astype(np.float64), p[r].astype(np.float64), scale[r].astype(np.float64)
        e = pc - yc
        ae = np.abs(e)
        denom = np.abs(yc) + np.abs(pc)
        sums["ase"] += float((ae / sc[:, None]).sum())
        sums["ae"] += float(ae.sum())
        sums["se"] += float((e ** 2).sum())
        sm = np.where(denom > 0, 2 * ae / np.where(denom > 0, denom, 1), 0.0)
        sums["smape"] += float(sm.sum())
        ase_step += (ae / sc[:, None]).sum(0)
        smape_step += sm.sum(0)
        zero = yc == 0
        zeros += int(zero.sum())
        if not zeros:
            sums["ape"] += float((ae / np.abs(yc)).sum())
        by_step += ae.sum(0)
    cells = n * H
    out = {"windows": n, "mase": sums["ase"] / cells, "mae": sums["ae"] / cells, "rmse": float(np.sqrt(sums["se"] / cells)),
           "smape": 100 * sums["smape"] / cells}
    if zeros:
        out["mape"] = None
        out["mape_note"] = f"left out: {zeros} actuals are zero, where MAPE divides by zero"
    else:
        out["mape"] = 100 * sums["ape"] / cells
    out["mae_by_step"] = [float(v) for v in by_step / n]
    out["mase_by_step"] = [float(v) for v in ase_step / n]
    out["smape_by_step"] = [float(v) for v in 100 * smape_step / n]
    return out


__all__ = ["HW_MAX_SERIES", "METHODS", "forecast_metrics", "hw_forecast", "run_baselines"]
