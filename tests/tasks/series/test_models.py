"""Every model family: the right output shapes, scaling inside (raw values in, the target's units out), and a
safe-mode .keras round trip; and a global LSTM over several series with a covariate, trained on the spine and
exported to TFLite."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kiln.tasks.series.models import MODELS
from kiln.tasks.series.windows import SeriesSpec


def _spec(quantiles=()):
    return SeriesSpec(time="t", target="y", horizon=5, lookback=16, season=4, freq="h", covariates=["c"],
                      quantiles=list(quantiles), mean=[100.0, 0.0], std=[10.0, 1.0])


@pytest.mark.parametrize("name", ["linear", "dense", "lstm", "gru", "cnn1d", "nbeats", "ensemble"])
def test_family_shapes_and_round_trip(name, tmp_path):
    import keras

    x = np.random.default_rng(0).normal(100, 10, (3, 16, 2)).astype(np.float32)
    snaive = x[:, [12 + h % 4 for h in range(5)], 0]  # the last season (4 steps) repeated over the horizon
    level = np.repeat(x[:, -4:, 0].mean(1, keepdims=True), 5, 1)  # the last season's mean
    for q, shape in (((), (3, 5)), ((0.1, 0.5, 0.9), (3, 5, 3))):
        for residual, base in ((True, snaive), (False, level)):
            model = MODELS.create(name, _spec(q), width=32, blocks=2, residual=residual)
            out = np.asarray(model(x))
            assert out.shape == shape
            model.set_weights([np.zeros_like(w) for w in model.get_weights()])  # a body that adds nothing: the
            want = base if not q else np.repeat(base[..., None], 3, -1)  # forecast is its base, in the target's units
            np.testing.assert_allclose(np.asarray(model(x)), want, rtol=1e-5)
        model = MODELS.create(name, _spec(q), width=32, blocks=2)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-4)


def test_linear_is_one_dense_layer_on_the_window():
    """lookback x channels -> horizon weights and a bias per step: nothing hidden."""
    model = MODELS.create("linear", _spec())
    assert model.count_params() == 16 * 2 * 5 + 5


def test_gru_update_gates_start_open_to_the_past():
    """The GRU's update-gate biases (Keras' z, r, h order) start at 1, the other gates' at 0."""
    import keras

    model = MODELS.create("gru", _spec(), width=64)
    grus = [layer for layer in model.layers if isinstance(layer, keras.layers.GRU)]
    assert len(grus) == 2
    for g in grus:
        b = np.asarray(g.cell.bias)  # (2, 3 * units): input and recurrent biases
        units = g.cell.units
        np.testing.assert_array_equal(b[..., :units], 1.0)
        np.testing.assert_array_equal(b[..., units:], 0.0)


def test_ensemble_averages_its_members_and_names_bad_members():
    from kiln.errors import ConfigError

    x = np.random.default_rng(0).normal(100, 10, (3, 16, 2)).astype(np.float32)
    model = MODELS.create("ensemble", _spec(), width=32, members=("nbeats", "dense", "gru"))
    assert [m.name for m in model.members] == ["nbeats", "dense", "gru"]
    mean = np.mean([np.asarray(m(x)) for m in model.members], 0)
    np.testing.assert_allclose(np.asarray(model(x)), mean, rtol=1e-5)
    with pytest.raises(ConfigError, match="series received members=nbets; .*Did you mean nbeats"):
        MODELS.create("ensemble", _spec(), members=("nbets", "dense"))
    with pytest.raises(ConfigError, match="members=ensemble"):
        MODELS.create("ensemble", _spec(), members=("ensemble",))


def test_instance_scaling_makes_each_window_unit_spread():
    """RevIN-style: the body sees every window's target at spread 1, whatever its own amplitude."""
    from kiln.tasks.series.layers import CenterTarget

    rng = np.random.default_rng(1)
    x = (rng.normal(0, 1, (4, 16, 2)) * np.array([0.01, 0.1, 1.0, 10.0])[:, None, None]).astype(np.float32)
    body, level = CenterTarget(4, instance=True)(x)
    body, level = np.asarray(body), np.asarray(level)
    assert level.shape == (4, 2)
    np.testing.assert_allclose(body[:, :, 0].std(1), x[:, :, 0].std(1) / np.sqrt(x[:, :, 0].var(1) + 1e-4), rtol=1e-4)
    np.testing.assert_allclose(body[2:, :, 0].std(1), 1.0, atol=0.01)
    np.testing.assert_allclose(body[:, :, 1], x[:, :, 1])  # covariates untouched


def test_global_model_over_series_with_a_covariate(tmp_path):
    import kiln

    rng = np.random.default_rng(0)
    parts = []
    for i, level in enumerate((5.0, 50.0, 500.0)):
        t = np.arange(200)
        c = np.sin(2 * np.pi * t / 24)
        parts.append(pd.DataFrame({"id": f"s{i}", "ts": pd.date_range("2024-01-01", periods=200, freq="h").strftime("%Y-%m-%dT%H:%M"),
                                   "y": level * (1 + 0.1 * c) + rng.normal(0, 0.01 * level, 200), "temp": c}))
    pd.concat(parts).to_csv(tmp_path / "many.csv", index=False)
    run = kiln.train(data=str(tmp_path / "many.csv"), time="ts", target="y", series="id", covariates="temp", horizon=6, lookback=24,
                     model="lstm", width=32, epochs=2, run_dir=str(tmp_path / "run"), train={"verbose": 0, "tensorboard": False},
                     evaluate={"report": False})
    meta = json.loads((run.path / "run.json").read_text())
    assert meta["series"]["covariates"] == ["temp"] and meta["series"]["series_column"] == "id"
    assert set(meta["series"]["scale"]) == {"s0", "s1", "s2"}
    m = json.loads((run.path / "metrics.json").read_text())
    assert m["test"]["windows"] == 3 * (20 - 6 + 1)  # every origin of each series' 20-step test stretch
    rows = run.predict([str(tmp_path / "many.csv")])
    assert [r["series"] for r in rows] == ["s0", "s1", "s2"] and all(len(r["forecast"]) == 6 for r in rows)
    assert rows[0]["forecast"][0]["ts"] == "2024-01-09T08:00:00"
    e = kiln.export_run(run.path, "tflite", out=str(tmp_path / "tflite"), timing={"latency_runs": 2, "batch_runs": 1, "batch_size": 4})
    assert e["passed"] and e["max_abs_diff"] < 1e-2  # a stacked LSTM with a covariate, in TFLite's builtin ops


def test_model_auto_is_the_ensemble_and_exports_as_one_model(tmp_path):
    """model=auto trains the linear + dense ensemble, says why, checks it against the classical forecasters on val
    (choice.py: the winner becomes model.keras), and the ONNX and TFLite exports of what ships match Keras."""
    import kiln
    from kiln.tasks.series.synth import hourly

    hourly(n=300, seed=2).to_csv(tmp_path / "load.csv", index=False)
    run = kiln.train(data=str(tmp_path / "load.csv"), time="date", target="load", horizon=6, lookback=24, width=16, blocks=1,
                     epochs=2, run_dir=str(tmp_path / "run"), train={"verbose": 0, "tensorboard": False}, evaluate={"report": False})
    meta = json.loads((run.path / "run.json").read_text())
    sel = meta["selection"]
    assert sel["val_mase"][sel["chosen"]] == min(sel["val_mase"].values()) and {"kiln", "ar", "seasonal_naive"} <= set(sel["val_mase"])
    assert sel.get("trained_model", meta["model"]) == "ensemble"
    if sel["chosen"] == "kiln":
        assert [m.name for m in run.model.members] == ["linear", "dense"]
    assert "mean forecast of linear + dense" in json.dumps(meta["auto"])
    for fmt in ("onnx", "tflite"):
        e = kiln.export_run(run.path, fmt, out=str(tmp_path / fmt), timing={"latency_runs": 2, "batch_runs": 1, "batch_size": 4})
        assert e["passed"] and e["max_abs_diff"] < 1e-3


def test_epochs_auto_gives_a_linear_model_five_times_the_steps():
    """About 4,000 steps and patience 15 for the other families; 20,000 steps and patience 40 when a linear model
    (alone or as a member) trains."""
    from types import SimpleNamespace

    from kiln.config import load_config
    from kiln.tasks.base import get_task

    task = get_task("series")
    data = SimpleNamespace(extra={"windows": {"train": 3000}}, spec=SimpleNamespace(lookback=24, lookback_reason="", season=24, freq="h"))

    def epochs(*keys):
        cfg = load_config(None, ["data=load.csv", "time=date", "target=load", *keys])
        resolved, decisions = task.resolve_auto(cfg, data, cfg.model.name)
        why = next(d.why for d in decisions if d.key == "train.epochs")
        patience[keys] = resolved.train.patience
        return resolved.train.epochs, why

    patience = {}

    steps = -(-3000 // task._batch(load_config(None, ["data=load.csv", "time=date", "target=load"]), 3000))
    assert epochs("model=nbeats") == (4000 // steps, f"about 4,000 steps of {steps} a epoch")
    assert epochs("model=ensemble", "members=nbeats,dense")[0] == 4000 // steps
    for keys in ((), ("model=linear",), ("model=ensemble", "members=gru,linear")):
        n, why = epochs(*keys)
        assert n == min(200, 20000 // steps) and why.startswith("about 20,000 steps") and "linear" in why, keys
    assert patience == {("model=nbeats",): 15, ("model=ensemble", "members=nbeats,dense"): 15, (): 40, ("model=linear",): 40,
                        ("model=ensemble", "members=gru,linear"): 40}
