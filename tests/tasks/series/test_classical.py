"""Season from the data, the classical baselines (Theta, AR by AIC, their mean) and model=auto's choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kiln.tasks.series.baselines import forecast_metrics, run_baselines
from kiln.tasks.series.classical import ar_matrix, fit_ar
from kiln.tasks.series.seasonality import detect_season
from kiln.tasks.series.windows import SeriesSpec, Windows, assign_splits


def _frame(y, freq="YS"):
    return pd.DataFrame({"series": "0", "time": pd.date_range("1700-01-01", periods=len(y), freq=freq), "y": y})


def _cycle(n=300, period=11, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + 40 * np.sin(2 * np.pi * t / period) + rng.normal(0, 5, n) + 0.05 * t


def test_season_comes_from_the_data_when_the_calendar_has_none():
    season, why = detect_season(_frame(_cycle()), "YS", 220)
    assert season == 11 and "autocorrelation peak" in why


def test_calendar_season_is_kept_when_confirmed_and_dropped_when_absent():
    rng = np.random.default_rng(1)
    monthly = _frame(_cycle(240, 12, 1), "MS")
    assert detect_season(monthly, "MS", 180)[0] == 12
    walk = _frame(np.cumsum(rng.normal(0, 1, 200)), "QS")  # no season: seasonal naive must be plain naive
    season, why = detect_season(walk, "QS", 150)
    assert season == 1 and "naive" in why


def test_season_ignores_the_val_and_test_stretches():
    y = np.concatenate([np.random.default_rng(2).normal(0, 1, 150), _cycle(150, 7, 2)])  # the cycle only after step 150
    assert detect_season(_frame(y), "YS", 150)[0] == 1


def test_ar_matrix_reproduces_the_recursion():
    lags, params = [1, 2, 5], np.array([0.3, 0.6, 0.2, -0.1])
    x = np.random.default_rng(3).normal(size=5)
    k, b = ar_matrix(lags, params, 4)
    hist = list(x)
    for _ in range(4):
        hist.append(params[0] + sum(c * hist[-lag] for c, lag in zip(params[1:], lags)))
    np.testing.assert_allclose(x @ k + b, hist[5:], rtol=1e-10)


def _windows(y, H=10, season=11, lookback=33):
    frame, lookback, val_len, test_len = assign_splits(_frame(y), H, lookback, 0.15, 0.15, "train", False)
    spec = SeriesSpec(time="t", target="y", horizon=H, lookback=lookback, season=season, freq="YS", val_len=val_len, test_len=test_len)
    return frame, spec, Windows(frame, spec)


def test_classical_baselines_beat_naive_on_a_cycle_and_the_mean_is_their_mean():
    y = _cycle(320, 11, 4)
    frame, spec, w = _windows(y)
    starts = w.starts(("test",))
    fit_end = np.full(len(starts), int(np.argmax(frame["split"].astype(str).to_numpy() == "test")))
    base = run_baselines(w, starts, fit_end, spec.season)
    scale = np.full(len(starts), np.mean(np.abs(np.diff(y))))
    mase = {k: forecast_metrics(w.targets(starts), v, scale)["mase"] for k, v in base.items()}
    assert {"theta", "ar", "mean"} <= set(mase)
    assert mase["ar"] < 0.6 * mase["naive"] and mase["theta"] < mase["naive"]
    members = np.stack([base[k] for k in ("seasonal_naive", "holt_winters", "theta", "ar")])
    np.testing.assert_allclose(base["mean"], members.mean(0))
    m = forecast_metrics(w.targets(starts), base["ar"], scale)
    assert len(m["mase_by_step"]) == 10 and m["mase_by_step"][0] < m["mase_by_step"][-1] + 1e-9
    assert np.isclose(np.mean(m["mase_by_step"]), m["mase"]) and np.isclose(np.mean(m["smape_by_step"]), m["smape"])


def test_classical_baselines_use_nothing_after_each_origin():
    y = _cycle(320, 11, 5)
    frame, spec, w = _windows(y)
    starts = w.starts(("test",))
    fit_end = np.full(len(starts), int(np.argmax(frame["split"].astype(str).to_numpy() == "test")))
    before = run_baselines(w, starts, fit_end, spec.season)
    change = fit_end[0] + 30
    w.values = w.values.copy()
    w.values[change:, 0] += 1000.0  # a jump inside the scored stretch
    after = run_baselines(w, starts, fit_end, spec.season)
    early = starts + w.lookback <= change  # origins at or before the jump: their forecasts may not move
    assert early.any() and (~early).any()
    for name in ("ar", "theta", "holt_winters", "mean"):
        np.testing.assert_allclose(before[name][early], after[name][early], err_msg=name)
        if name in ("ar", "theta"):  # Holt-Winters may fit alpha ~ 0 to a clean cycle and barely move
            assert not np.allclose(before[name][~early], after[name][~early]), name  # later origins see the jump


def test_fit_ar_picks_the_true_order():
    rng = np.random.default_rng(6)
    y = np.zeros(600)
    for t in range(2, 600):
        y[t] = 1.0 + 0.5 * y[t - 1] + 0.3 * y[t - 2] + rng.normal()
    lags, params = fit_ar(y, 1)
    assert lags[:2] == [1, 2] and abs(params[1] - 0.5) < 0.1 and abs(params[2] - 0.3) < 0.1


class _Run:
    """What `choose` reads of a run: its folder, run.json and model."""

    def __init__(self, path, model):
        self.path, self.model = path, model
        self.meta = {"task": "series", "model": "ensemble"}


def test_choice_ships_the_ar_inside_the_model_when_it_beats_the_trained_one(tmp_path):
    from kiln.io import load_keras, save_model
    from kiln.tasks.series.choice import choose, fixed_model, seasonal_naive_map
    from kiln.tasks.series.evaluate import backtest

    rng = np.random.default_rng(7)
    y = np.zeros(400)
    for t in range(2, 400):
        y[t] = 5.0 + 0.6 * y[t - 1] + 0.3 * y[t - 2] + rng.normal()
    frame, spec, w = _windows(y, H=4, season=3, lookback=12)
    trained = fixed_model(spec, *seasonal_naive_map(3, 4), "stand_in")  # a weak "trained model": seasonal naive of 3
    run = _Run(tmp_path, trained)
    learned = choose(run, frame, spec)  # run.json keys for the trainer to write; the chosen model is the run's model
    record = learned["selection"]
    assert record["chosen"] in ("ar", "kiln+ar") and record["val_mase"][record["chosen"]] < record["val_mase"]["kiln"]
    assert learned["model"] != "ensemble" and run.model is not trained
    save_model(run.model, tmp_path / "model.keras")
    shipped = load_keras(tmp_path / "model.keras")  # what the trainer saves loads back in safe mode
    x = w.arrays(w.starts(("test",)))[0]
    p = np.asarray(shipped.predict_on_batch(x))
    assert p.shape == (len(x), 4) and np.isfinite(p).all()
    ours, theirs = backtest(shipped, frame, spec, "test", holt=False), backtest(trained, frame, spec, "test", holt=False)
    assert ours["mase"] < theirs["mase"]  # what ships forecasts better on the unseen stretch too


def test_choice_keeps_the_trained_model_for_many_series_and_says_why(tmp_path):
    from kiln.tasks.series.choice import choose, fixed_model, seasonal_naive_map

    frame, spec, _ = _windows(_cycle(200, 11, 8))
    frame.loc[frame.index[100:], "series"] = "1"
    record = choose(_Run(tmp_path, fixed_model(spec, *seasonal_naive_map(11, 10), "m")), frame, spec)["selection"]
    assert record["chosen"] == "kiln" and "many series" in record["why"]


def test_kiln_audit_of_plain_years_finds_the_cycle(tmp_path):
    """Issue 32: a yearly file of plain years parses without time_format= and its season is not 1."""
    from kiln.tasks.series.report import audit_file

    y = _cycle(200, 11, 9)
    (tmp_path / "years.csv").write_text("year,v\n" + "\n".join(f"{1750 + i},{v:.2f}" for i, v in enumerate(y)) + "\n")
    report = audit_file(tmp_path / "years.csv", str(tmp_path / "audit"), "year", "v")
    assert report["frequency"] == "YS" and report["season"] == 11 and (tmp_path / "audit" / "audit.html").is_file()


def test_choice_keeps_the_trained_model_on_a_long_history(tmp_path):
    from kiln.tasks.series.choice import MAX_WINDOWS, choose, fixed_model, seasonal_naive_map

    frame, spec, _ = _windows(_cycle(200, 11, 10))
    record = choose(_Run(tmp_path, fixed_model(spec, *seasonal_naive_map(11, 10), "m")), frame, spec, MAX_WINDOWS + 1)["selection"]
    assert record["chosen"] == "kiln" and "long history" in record["why"]


def test_pick_keeps_the_combination_unless_val_beats_it_clearly():
    from kiln.tasks.series.choice import DEFAULT, MARGIN, pick

    close = {"kiln": 1.0, DEFAULT: 1.0 / (1 - MARGIN / 2), "seasonal_naive": 1.2}  # the trained model 5 % lower: noise
    assert pick(close) == DEFAULT
    clear = {"kiln": 1.0, DEFAULT: 1.0 / (1 - 2 * MARGIN), "seasonal_naive": 1.2}  # 20 % lower: it ships
    assert pick(clear) == "kiln"
    assert pick({"kiln": 1.0, "seasonal_naive": 0.95}) == "seasonal_naive"  # no AR (no default): the lowest
