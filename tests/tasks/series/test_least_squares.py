"""The linear family's least-squares start and the training windows' shuffle: what is solved is what the model
computes, quantiles start around it, and each pass over the windows is a fresh, seeded permutation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kiln.tasks.series.least_squares import linear_members, warm_start
from kiln.tasks.series.models import MODELS
from kiln.tasks.series.windows import SeriesSpec, Windows, shuffled, split_codes


def _ar_frame(n=600, seed=0):
    """An AR(2) series around a daily-ish cycle: a linear autoregression forecasts it up to its small noise."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    for t in range(2, n):
        y[t] = 1.6 * y[t - 1] - 0.8 * y[t - 2] + rng.normal(0, 0.01)
    y = 50 + 5 * np.sin(2 * np.pi * np.arange(n) / 8) + y
    frame = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=n, freq="h"), "series": "0", "y": y})
    frame["split"] = split_codes(np.arange(n)[::-1], 60, 60)
    return frame


def _spec(frame, quantiles=()):
    train = frame.loc[frame["split"] == "train", "y"]
    return SeriesSpec(time="time", target="y", horizon=4, lookback=16, season=8, freq="h", quantiles=list(quantiles),
                      mean=[float(train.mean())], std=[float(train.std())])


def test_least_squares_start_forecasts_a_linear_process_to_its_noise():
    frame = _ar_frame()
    spec = _spec(frame)
    w = Windows(frame, spec)
    train, test = w.starts(("train",)), w.starts(("test",))
    x, y = w.arrays(test)
    model = MODELS.create("linear", spec)
    before = np.abs(np.asarray(model(x)) - y).mean()
    done = warm_start(model, w, train, spec)
    after = np.abs(np.asarray(model(x)) - y).mean()
    assert done and done[0]["windows"] == len(train) and done[0]["inputs"] == 16
    naive = np.abs(x[:, -1:, 0] - y).mean()
    assert after < 0.05 * naive and after < 0.05 * before  # the AR noise is 0.01; naive is off by ~1


def test_only_linear_members_start_from_least_squares_and_quantiles_straddle_the_point():
    frame = _ar_frame()
    spec = _spec(frame, quantiles=(0.1, 0.5, 0.9))
    w = Windows(frame, spec)
    model = MODELS.create("ensemble", spec, members=("linear", "dense"), width=16)
    assert [m.name for m in linear_members(model)] == ["linear"]
    dense_before = [v.copy() for v in model.members[1].get_weights()]
    warm_start(model, w, w.starts(("train",)), spec)
    for a, b in zip(dense_before, model.members[1].get_weights()):
        np.testing.assert_array_equal(a, b)
    x, y = w.arrays(w.starts(("test",)))
    q = np.asarray(model.members[0](x))  # (N, H, 3)
    assert (q[..., 0] <= q[..., 1]).all() and (q[..., 1] <= q[..., 2]).all()
    inside = ((y >= q[..., 0]) & (y <= q[..., 2])).mean()
    assert 0.5 <= inside <= 0.98  # an 80 % interval from the training residuals, on fresh windows


def test_least_squares_false_leaves_the_linear_model_random(tmp_path):
    import kiln

    frame = _ar_frame(400)
    path = tmp_path / "ar.csv"
    frame[["time", "y"]].assign(time=frame["time"].dt.strftime("%Y-%m-%dT%H:%M")).to_csv(path, index=False)
    keys = {"series.time": "time", "series.target": "y", "series.horizon": 4, "series.lookback": 16, "model": "linear",
            "epochs": 1, "lr": 1e-9, "train": {"verbose": 0, "tensorboard": False}, "evaluate": {"report": False}}
    on = kiln.train(data=str(path), run_dir=str(tmp_path / "on"), **keys)
    off = kiln.train(data=str(path), run_dir=str(tmp_path / "off"), **keys, **{"series.least_squares": False})
    mase = lambda r: (r.path / "metrics.json").read_text()  # noqa: E731
    import json

    m_on, m_off = (json.loads(mase(r))["test"]["mase"] for r in (on, off))
    naive = json.loads(mase(on))["test"]["baselines"]["naive"]["mase"]
    assert m_on < 0.2 * naive and m_off > 2 * m_on


def test_each_pass_is_a_fresh_seeded_permutation():
    starts = np.arange(0, 3000, 3, dtype=np.int64)
    ds = shuffled(starts, seed=5)
    assert int(ds.cardinality()) == len(starts)
    one, two = (np.array([int(v) for v in ds]) for _ in range(2))
    assert sorted(one) == list(starts) and sorted(two) == list(starts)
    assert not np.array_equal(one, two) and not np.array_equal(one, starts)
    again = np.array([int(v) for v in shuffled(starts, seed=5)])
    np.testing.assert_array_equal(one, again)
    assert not np.array_equal(one, np.array([int(v) for v in shuffled(starts, seed=6)]))
