"""Rolling-origin backtests (Kiln's model and the baselines on the same windows) and forecasts from a history.

    result = backtest(model, frame, spec, "test")   # metrics, baselines, skill against seasonal naive
    rows = forecast(model, history_frame, spec)    # the horizon after the last timestamp of each series
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kiln.errors import DataError, received
from kiln.tasks.series.baselines import forecast_metrics, run_baselines
from kiln.tasks.series.prepare import scales
from kiln.tasks.series.windows import SPLITS, Windows, split_of


def point_of(pred: np.ndarray, spec) -> np.ndarray:
    """The point forecast (N, H): the median of a quantile output."""
    return pred[..., spec.quantiles.index(0.5)] if spec.quantiles else pred


def predict_windows(model, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Forecasts of (N, L, C) windows, `chunk` at a time: `model.predict` on the whole array copies it into a
    tf.data pipeline first, which on a million-row backtest costs hundreds of MB for nothing."""
    if not len(x):
        return np.zeros((0,), np.float32)
    return np.concatenate([np.asarray(model.predict_on_batch(x[i:i + chunk])) for i in range(0, len(x), chunk)])


def predict_starts(model, w, starts: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Forecasts of the windows at `starts`, each chunk's inputs gathered just before it is predicted: the
    whole (N, L, C) input array and its int64 gather index (N x L x 8 bytes) at once were ~100 MB a backtest
    of a million-row file."""
    if not len(starts):
        return np.zeros((0,), np.float32)
    return np.concatenate([np.asarray(model.predict_on_batch(w.arrays(starts[i:i + chunk])[0])) for i in range(0, len(starts), chunk)])


def backtest(model, frame: pd.DataFrame, spec, split: str, holt: bool = True, origins: int | None = 500, keep: dict | None = None) -> dict:
    """Metrics of the model and of every baseline on the windows whose targets lie in `split`.
    `keep` (a dict) receives the arrays the plots draw."""
    w = Windows(frame, spec)
    starts = w.starts((split,), last_per_series=origins)
    if not len(starts):
        return {"windows": 0}
    y = w.targets(starts)
    pred = predict_starts(model, w, starts)
    point = point_of(pred, spec)
    which = np.searchsorted(w.bounds, starts, side="right") - 1
    ids = w.series[w.bounds[which]]
    sc = scales(frame, spec.season)
    scale = np.array([sc.get(str(i), 1.0) for i in ids])
    split_rows = split_of(frame) == SPLITS[split]
    first = {a: a + int(np.argmax(split_rows[a:b])) for a, b in zip(w.bounds[:-1], w.bounds[1:])}
    fit_end = np.array([first[a] for a in w.bounds[which]])
    base = run_baselines(w, starts, fit_end, spec.season, holt)
    out = forecast_metrics(y, point, scale)
    if spec.quantiles:
        out.update(coverage(y, pred, spec.quantiles))
    ref = forecast_metrics(y, base["seasonal_naive"], scale)
    out["skill_vs_seasonal_naive"] = 1 - out["mase"] / ref["mase"] if ref.get("mase") else None
    out["baselines"] = {}
    for name, p in base.items():
        m = forecast_metrics(y, p, scale)
        m["skill_vs_seasonal_naive"] = (1 - m["mase"] / ref["mase"]) if m.get("mase") is not None and ref.get("mase") else None
        out["baselines"][name] = m
    out["winner"] = winner(out)
    if keep is not None:
        keep.update(starts=starts, y=y, pred=pred, point=point, baselines=base, windows=w)
    return out


def winner(result: dict) -> dict:
    """{"name", "mase"} of the lowest MASE among Kiln's model ("kiln") and the baselines on these windows."""
    scores = {"kiln": result.get("mase")} | {k: v.get("mase") for k, v in result.get("baselines", {}).items()}
    scores = {k: v for k, v in scores.items() if v is not None and np.isfinite(v)}
    if not scores:
        return {}
    best = min(scores, key=scores.get)
    return {"name": best, "mase": float(scores[best])}


def coverage(y: np.ndarray, pred: np.ndarray, quantiles: list[float]) -> dict:
    """Empirical coverage of the outermost interval and the share of actuals below each quantile."""
    lo, hi = pred[..., 0], pred[..., -1]
    inside = float(np.mean((y >= lo) & (y <= hi)))
    below = {f"{q:g}": float(np.mean(y <= pred[..., i])) for i, q in enumerate(quantiles)}
    return {"interval": [quantiles[0], quantiles[-1]], "coverage": inside, "nominal_coverage": quantiles[-1] - quantiles[0],
            "share_below_quantile": below}


def forecast(model, frame: pd.DataFrame, spec, component: str = "predict") -> pd.DataFrame:
    """The `horizon` steps after the last timestamp of every series in `frame` (on its grid), with timestamps
    continuing at the run's frequency and quantile columns when the model has them."""
    parts = []
    xs, ids, lasts = [], [], []
    for sid, g in frame.groupby("series", sort=False):
        vals = g[spec.columns].to_numpy(np.float32)
        if len(vals) < spec.lookback:
            raise DataError(received(component, "history", f"{len(vals)} steps", f"the model needs the last lookback={spec.lookback} steps"
                                     f"{' of series ' + str(sid) if spec.series_column else ''}", f"Pass at least {spec.lookback} rows"))
        window = vals[-spec.lookback:]
        if np.isnan(window).any():
            raise DataError(received(component, "history", f"{int(np.isnan(window).any(1).sum())} missing steps",
                                     f"the last {spec.lookback} steps must all have values (fill={spec.fill})", "Fill the gaps, or train with fill=interpolate"))
        xs.append(window)
        ids.append(sid)
        lasts.append(g["time"].iloc[-1])
    pred = predict_windows(model, np.stack(xs))
    point = point_of(pred, spec)
    for i, (sid, last) in enumerate(zip(ids, lasts)):
        times = pd.date_range(last, periods=spec.horizon + 1, freq=spec.freq)[1:]
        part = pd.DataFrame({"series": sid, spec.time: times.strftime("%Y-%m-%dT%H:%M:%S"), "step": np.arange(1, spec.horizon + 1),
                             "forecast": point[i]})
        for j, q in enumerate(spec.quantiles):
            part[f"q{q:g}"] = pred[i, :, j]
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    if not spec.series_column:
        out = out.drop(columns=["series"])
    return out


def next_times(last, spec) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M:%S") for t in pd.date_range(pd.Timestamp(last), periods=spec.horizon + 1, freq=spec.freq)[1:]]


__all__ = ["backtest", "coverage", "winner", "forecast", "next_times", "point_of", "predict_starts", "predict_windows"]
