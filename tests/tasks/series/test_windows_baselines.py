"""Leak-free windows, the baselines and the metrics, and which task a file with time= + horizon= goes to."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from kiln.errors import DataError
from kiln.tasks.series.baselines import forecast_metrics, hw_forecast, run_baselines
from kiln.tasks.series.audit import regularise
from kiln.tasks.series.source import SeriesFrame
from kiln.tasks.series.windows import SPLITS, SeriesSpec, Windows, assign_splits, split_of


def _frame(n=100, series=("a",), y=None):
    parts = []
    for s in series:
        parts.append(pd.DataFrame({"series": s, "time": pd.date_range("2024-01-01", periods=n, freq="h"),
                                   "y": np.arange(n, dtype=float) if y is None else y}))
    return pd.concat(parts, ignore_index=True)


def _spec(L=8, H=4, season=4):
    return SeriesSpec(time="t", target="y", horizon=H, lookback=L, season=season, freq="h")


def test_split_windows_never_see_the_future():
    frame, L, val_len, test_len = assign_splits(_frame(100, ("a", "b")), 4, 8, 0.1, 0.1, "train", False)
    assert (val_len, test_len) == (10, 10)
    w = Windows(frame, _spec())
    split = split_of(frame)
    for name, expect in (("train", 80 - 8 - 4 + 1), ("val", 10 - 4 + 1), ("test", 10 - 4 + 1)):
        s = w.starts((name,))
        assert len(s) == 2 * expect  # two series, no window across their boundary
        targets = s[:, None] + 8 + np.arange(4)
        assert (split[targets] == SPLITS[name]).all()
    assert frame["split"].cat.codes.dtype == np.int8  # one byte a row, not a string
    assert (frame["split"] == "test").sum() == 2 * test_len  # names still compare (the spine counts splits so)
    x, y = w.arrays(w.starts(("test",)))
    assert x.shape == (14, 8, 1) and y.shape == (14, 4)
    np.testing.assert_array_equal(y[:, 0], x[:, -1, 0] + 1)  # the target follows the window (y = t)
    xb, yb = next(iter(w.dataset(w.starts(("train",)), 16, training=True)))
    assert tuple(xb.shape) == (16, 8, 1) and tuple(yb.shape) == (16, 4)
    np.testing.assert_array_equal(yb.numpy()[:, 0], xb.numpy()[:, -1, 0] + 1)


def test_windows_touching_a_missing_value_are_left_out():
    y = np.arange(60, dtype=float)
    y[30] = np.nan
    frame, *_ = assign_splits(_frame(60, y=y), 4, 8, 0.0, 0.0, "train", False)
    w = Windows(frame, _spec())
    s = w.starts(("train",))
    assert len(s) == (60 - 12 + 1) - 12  # the 12 windows whose 12 rows include row 30
    assert not np.isnan(w.arrays(s)[0]).any()


def test_too_short_and_too_long_horizon_fail_in_one_line():
    with pytest.raises(DataError, match="at least lookback \\+ horizon"):
        assign_splits(_frame(10), 4, 8, 0.1, 0.1, "train", False)
    with pytest.raises(DataError, match="train received horizon=35"):
        assign_splits(_frame(100), 35, 8, 0.1, 0.1, "train", False)


def test_baselines_on_a_seasonal_series():
    n, m = 120, 4
    y = np.tile([1.0, 5.0, 2.0, 8.0], n // m)
    frame, *_ = assign_splits(_frame(n, y=y), 4, 8, 0.1, 0.1, "train", False)
    w = Windows(frame, _spec())
    s = w.starts(("test",))
    _, actual = w.arrays(s)
    fit_end = np.full(len(s), int(np.argmax(split_of(frame) == SPLITS["test"])))
    base = run_baselines(w, s, fit_end, m, holt=True)
    np.testing.assert_allclose(base["seasonal_naive"], actual)  # exact on a pure season
    np.testing.assert_allclose(base["naive"], np.repeat(actual[:, [0]] * 0 + y[s + 7][:, None], 4, axis=1))
    assert np.abs(base["holt_winters"] - actual).mean() < 0.05


def test_hw_forecast_matches_statsmodels():
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    t = np.arange(200)
    y = 10 + 0.05 * t + 3 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(0, 0.3, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal="add", seasonal_periods=12,
                                   initialization_method="estimated").fit()
    np.testing.assert_allclose(hw_forecast(fit, np.array([200]), 8, 12, fit.params["damping_trend"])[0], fit.forecast(8), rtol=1e-8)


def test_metrics_leave_out_mape_on_zeros():
    y = np.array([[0.0, 2.0], [4.0, 4.0]])
    m = forecast_metrics(y, y + 1, np.array([2.0, 2.0]))
    assert m["mae"] == 1.0 and m["mase"] == 0.5 and m["mape"] is None and "zero" in m["mape_note"]
    assert forecast_metrics(y + 1, y + 2, np.ones(2))["mape"] == pytest.approx(100 * np.mean(1 / (y + 1)))


def test_time_and_horizon_go_to_series_and_target_alone_to_table(tmp_path):
    from kiln.config import load_config
    from kiln.tasks.base import resolve_task

    path = tmp_path / "x.csv"
    path.write_text("date,load,other\n2024-01-01,1,2\n")
    cfg = load_config(overrides={"data": str(path), "time": "date", "target": "load", "horizon": 3})
    assert resolve_task(cfg).info.name == "series" and cfg.series.target == "load"
    cfg = load_config(overrides={"data": str(path), "target": "load"})
    assert resolve_task(cfg).info.name == "table" and cfg.table.target == "load"


def _regularise_loop(sf, freq, fill):
    """The per-series reindex alone (the fast path turned off), to compare with."""
    from unittest import mock

    with mock.patch("kiln.tasks.series.audit._on_grid", return_value=None):
        return regularise(sf, freq, fill)


def test_regular_series_skip_the_reindex_and_match_it():
    frame = _frame(50, ("a", "b", "c"))
    frame["x"] = np.random.default_rng(0).normal(size=len(frame))
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)  # rows of every series interleaved
    for f in (frame, shuffled):
        sf = SeriesFrame(f, "mem", "%Y", pd.DataFrame(), ["x"])
        fast, facts = regularise(sf, "h", "none")
        slow, slow_facts = _regularise_loop(sf, "h", "none")
        pd.testing.assert_frame_equal(fast.reset_index(drop=True), slow, check_dtype=False, check_index_type=False)
        assert facts == slow_facts


def test_gaps_duplicates_and_missing_values_still_go_through_the_reindex():
    gap = _frame(50).drop(index=[10, 11]).reset_index(drop=True)
    out, facts = regularise(SeriesFrame(gap, "mem", "%Y", pd.DataFrame(), []), "h", "interpolate")
    assert len(out) == 50 and facts["filled"] == 2 and out["y"].tolist() == list(range(50))
    nan = _frame(50)
    nan.loc[5, "y"] = np.nan
    out, facts = regularise(SeriesFrame(nan, "mem", "%Y", pd.DataFrame(), []), "h", "ffill")
    assert facts["filled"] == 1 and out["y"].iloc[5] == 4
    dup = pd.concat([_frame(20), _frame(20).iloc[[3]]], ignore_index=True)
    with pytest.raises(DataError, match="repeat a timestamp"):
        regularise(SeriesFrame(dup, "mem", "%Y", pd.DataFrame(), [], {"time": "t"}), "h", "none")
