"""From a config (or a trained run's spec) to the frame the windows are cut from: read, audit, put on the
grid, fill as asked, split chronologically, scalers and MASE scales fitted on the training stretch."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from kiln.errors import DataError, received
from kiln.tasks.series.audit import audit_frame, infer_freq, regularise, season_of
from kiln.tasks.series.seasonality import detect_season
from kiln.tasks.series.source import read_series
from kiln.tasks.series.windows import SPLITS, SeriesSpec, assign_splits, auto_lookback, fit_scalers, seasonal_scale, split_codes, split_of

log = logging.getLogger("kiln.series")


def check_keys(s, component: str = "train") -> None:
    if s.horizon is None:
        raise DataError(received(component, "horizon", "<unset>", "a forecast needs the number of steps ahead",
                                 "Pass horizon=H (e.g. horizon=24 for a day of hourly data)"))


def prepare(cfg, component: str = "train"):
    """(frame with split, SeriesSpec, audit report, fill facts) for `kiln train`."""
    s = cfg.series
    check_keys(s, component)
    sf = read_series(cfg.data.path, s.time, s.target, s.series, s.covariates, s.time_format, component)
    if not len(sf.frame):
        raise DataError(received(component, "time", s.time, "no row has a time that parses", "Check the time column and time_format="))
    freq = infer_freq(sf.frame.loc[sf.frame["series"] == sf.frame["series"].iloc[0], "time"])
    report = audit_frame(sf, freq, season_of(freq) if s.season == "auto" else int(s.season))
    for p in report["problems"]:
        if p["severity"] != "info":
            log.warning("%s: %s", component, p["detail"])
    frame, fill = regularise(sf, freq, s.fill, component)
    if s.season == "auto":
        season, season_why = detect_season(frame, freq, train_steps(frame, s.horizon, cfg.data.val_split, cfg.data.test_split))
    else:
        season, season_why = int(s.season), "set by season="
    report["season"], report["season_reason"] = season, season_why
    if fill["filled"]:
        print(f"kiln: fill={s.fill} filled {fill['filled']:,} missing values", flush=True)
    if s.lookback == "auto":
        lookback, why = auto_lookback(season, s.horizon)
    else:
        lookback, why = int(s.lookback), "set by lookback="
    frame, lb, val_len, test_len = assign_splits(frame, s.horizon, lookback, cfg.data.val_split, cfg.data.test_split,
                                                 component, s.lookback == "auto")
    if lb != lookback:
        why = f"{why}; cut to {lb} so the training stretch holds windows"
    spec = SeriesSpec(time=sf.facts["time"], target=sf.facts["target"], horizon=s.horizon, lookback=lb, season=season, freq=freq,
                      covariates=list(sf.covariates), series_column=sf.facts["series_column"], time_format=sf.time_format,
                      quantiles=list(s.quantiles), fill=s.fill, val_len=val_len, test_len=test_len, lookback_reason=why,
                      season_reason=season_why)
    spec.mean, spec.std = fit_scalers(frame, spec.columns)
    spec.scale = scales(frame, season)
    return frame, spec, report, fill


def train_steps(frame: pd.DataFrame, horizon: int, val_split: float, test_split: float) -> int:
    """Steps of the shortest series before its val and test stretches (as `assign_splits` sizes them)."""
    n = int(frame.groupby("series", sort=False).size().min())
    test_len = max(horizon, int(round(n * test_split))) if test_split > 0 else 0
    val_len = max(horizon, int(round(n * val_split))) if val_split > 0 else 0
    return max(n - test_len - val_len, 0)


def scales(frame: pd.DataFrame, season: int) -> dict:
    train = frame.loc[split_of(frame) == SPLITS["train"], ["series", "y"]]  # two columns, not a copy of the frame
    return {str(k): seasonal_scale(g.to_numpy(np.float64), season) for k, g in train.groupby("series", sort=False)["y"]}


def frame_for(spec: SeriesSpec, path: str, component: str) -> pd.DataFrame:
    """A file read as the run's spec reads it, on its grid, split with the run's stretch lengths."""
    sf = read_series(path, spec.time, spec.target, spec.series_column, spec.covariates, spec.time_format, component)
    if not len(sf.frame):
        raise DataError(received(component, "data", path, "no row has a time that parses", f"The run reads {spec.time} as {spec.time_format}"))
    check_frequency(sf.frame, spec, component, path)
    frame, _ = regularise(sf, spec.freq, spec.fill, component)
    n = int(frame.groupby("series").size().min())
    if n < spec.lookback + spec.horizon + spec.test_len:
        raise DataError(received(component, "data", path, f"a series of {n} steps is shorter than lookback + horizon + the test stretch "
                                 f"({spec.lookback} + {spec.horizon} + {spec.test_len})", "Pass a longer file"))
    pos = frame.groupby("series", sort=False).cumcount(ascending=False).to_numpy()
    frame["split"] = split_codes(pos, spec.val_len, spec.test_len)
    return frame


def check_frequency(frame: pd.DataFrame, spec: SeriesSpec, component: str, path) -> None:
    first = frame.loc[frame["series"] == frame["series"].iloc[0], "time"]
    if len(first.unique()) < 3:
        return
    freq = infer_freq(first)
    if freq != spec.freq:
        raise DataError(received(component, "data", path, f"its timestamps step by {freq}, the run was trained on {spec.freq}",
                                 f"Pass a history sampled every {spec.freq}"))


__all__ = ["check_frequency", "check_keys", "frame_for", "prepare", "scales", "train_steps"]
