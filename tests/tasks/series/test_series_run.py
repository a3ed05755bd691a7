"""A trained series run (nbeats with quantiles, on the spine's trainer) end to end: skill against the
baselines, coverage, kiln predict / evaluate, bad input (one line, exit 2, nothing written), serving, export."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kiln.tasks.series.synth import hourly

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "serve"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import kiln

    root = tmp_path_factory.mktemp("series-run")
    hourly(n=600, seed=1).to_csv(root / "load.csv", index=False)
    return kiln.train(data=str(root / "load.csv"), time="date", target="load", horizon=12, lookback=48, quantiles=[0.1, 0.9],
                      model="nbeats", width=64, blocks=2, epochs=40, run_dir=str(root / "run"), seed=0,
                      train={"verbose": 0, "tensorboard": False, "export_on_finish": "none"}, evaluate={"report": False})


def _cli(*args) -> tuple[int, str]:
    import contextlib
    import io

    from kiln.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue().strip()


def test_beats_seasonal_naive_with_calibrated_intervals(run):
    m = json.loads((run.path / "metrics.json").read_text())
    test = m["test"]
    assert set(m["baselines"]["test"]) == {"naive", "seasonal_naive", "drift", "holt_winters", "theta", "ar", "mean"}
    assert test["winner"]["name"] in {"kiln", *m["baselines"]["test"]}
    assert test["mase"] < m["baselines"]["test"]["seasonal_naive"]["mase"] and test["skill_vs_seasonal_naive"] > 0
    assert test["mase"] < m["baselines"]["test"]["naive"]["mase"] / 2
    assert 0.5 <= test["coverage"] <= 1.0 and test["nominal_coverage"] == pytest.approx(0.8)
    assert len(test["mae_by_step"]) == 12 and test["mape"] is not None
    meta = json.loads((run.path / "run.json").read_text())
    assert meta["task"] == "series" and meta["series"]["quantiles"] == [0.1, 0.5, 0.9] and meta["series"]["freq"] == "h"


def test_predict_writes_the_next_horizon_with_timestamps(run, tmp_path):
    hist = tmp_path / "history.csv"
    hourly(n=600, seed=1).iloc[-100:].to_csv(hist, index=False)
    out = tmp_path / "forecast.csv"
    code, err = _cli("predict", str(run.path), str(hist), f"out={out}")
    assert code == 0, err
    f = pd.read_csv(out)
    assert len(f) == 12 and list(f.columns[:3]) == ["date", "step", "forecast"] and {"q0.1", "q0.5", "q0.9"} <= set(f.columns)
    assert f["date"].iloc[0] == "2024-01-26T00:00:00" and f["date"].iloc[-1] == "2024-01-26T11:00:00"
    assert (f["q0.1"] <= f["q0.9"]).all()


def test_evaluate_backtests_another_file(run, tmp_path):
    other = tmp_path / "other.csv"
    hourly(n=300, seed=7).to_csv(other, index=False)
    m = run.evaluate(data=str(other))
    assert m["windows"] > 0 and m["mase"] < m["baselines"]["naive"]["mase"]
    assert len(m["mase_by_step"]) == len(m["smape_by_step"]) == 12 and np.mean(m["mase_by_step"]) == pytest.approx(m["mase"])
    assert 0.0 <= m["coverage"] <= 1.0  # the quantile run's interval, on the other file's origins


@pytest.mark.parametrize("rows, why", [
    (20, "needs the last lookback=48"),
    (-1, "step by D, the run was trained on h"),
])
def test_bad_histories_fail_in_one_line_and_write_nothing(run, tmp_path, rows, why):
    hist = tmp_path / "h.csv"
    if rows > 0:
        hourly(n=rows).to_csv(hist, index=False)
    else:
        f = hourly(n=100)
        f["date"] = pd.date_range("2024-01-01", periods=100, freq="D").strftime("%Y-%m-%d %H:%M")
        f.to_csv(hist, index=False)
    out = tmp_path / "forecast.csv"
    code, err = _cli("predict", str(run.path), str(hist), f"out={out}")
    assert code == 2 and why in err and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("edit, keys, why", [
    (None, ["time=dte"], "time=dte; the file has no such column. Did you mean date?"),
    (None, ["horizon=200"], "train received horizon=200"),
    ("short", [], "a series needs at least lookback + horizon"),
    ("text", [], "cells are not numbers"),
])
def test_bad_training_input_is_one_line(tmp_path, edit, keys, why):
    f = hourly(n=20 if edit == "short" else 300)
    if edit == "text":
        f["load"] = f["load"].astype(str)
        f.loc[5, "load"] = "n/a?"
    f.to_csv(tmp_path / "d.csv", index=False)
    args = {"time": "date", "target": "load", "horizon": 6, "lookback": 24}
    args.update(dict(k.split("=") for k in keys))
    code, err = _cli("train", f"data={tmp_path / 'd.csv'}", *[f"{k}={v}" for k, v in args.items()], f"run_dir={tmp_path / 'r'}")
    assert code == 2 and why in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_serves_forecasts_with_timestamps_over_both_protocols(run):
    from kiln_serving import running

    from kiln.serve.app import create_app

    f = hourly(n=600, seed=1).iloc[-60:]
    app = create_app(run.path)
    name = app.state.kiln.model.name

    def post(url, body):
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    with running(app) as url:
        code, body = post(f"{url}/v1/models/{name}:predict", {"instances": [{"history": f["load"].tolist(), "timestamps": f["date"].tolist()}]})
        assert code == 200
        p = body["predictions"][0]
        assert len(p["forecast"]) == 12 and p["timestamps"][0] == "2024-01-26T00:00:00" and set(p["quantiles"]) == {"0.1", "0.5", "0.9"}
        v2 = {"inputs": [{"name": "history", "datatype": "FP32", "shape": [2, 60], "data": f["load"].tolist() * 2},
                         {"name": "timestamps", "datatype": "BYTES", "shape": [2], "data": [f["date"].iloc[-1]] * 2}]}
        code, body = post(f"{url}/v2/models/{name}/infer", v2)
        assert code == 200
        outs = {o["name"]: o for o in body["outputs"]}
        assert outs["forecast"]["shape"] == [2, 12] and outs["quantiles"]["shape"] == [2, 12, 3] and outs["timestamps"]["shape"] == [2, 12]
        np.testing.assert_allclose(outs["forecast"]["data"][:12], p["forecast"], rtol=1e-5)
        code, body = post(f"{url}/v1/models/{name}:predict", {"instances": [f["load"].tolist()[:10]]})
        assert code == 400 and "lookback=48" in body["error"]
        daily = pd.date_range("2024-01-01", periods=60, freq="D").strftime("%Y-%m-%d").tolist()
        code, body = post(f"{url}/v1/models/{name}:predict", {"instances": [{"history": f["load"].tolist(), "timestamps": daily}]})
        assert code == 400 and "steps by D" in body["error"]
        # /predict and a page, as tables and text have: one history in, its forecast out
        code, one = post(f"{url}/predict", {"history": f["load"].tolist(), "timestamps": f["date"].iloc[-1]})
        assert code == 200 and one["timestamps"] == p["timestamps"]
        np.testing.assert_allclose(one["forecast"], p["forecast"], rtol=1e-5)
        code, bare = post(f"{url}/predict", f["load"].tolist())
        assert code == 200 and len(bare["forecast"]) == 12 and "timestamps" not in bare
        code, many = post(f"{url}/predict", [{"history": f["load"].tolist()}] * 2)
        assert code == 200 and len(many) == 2
        code, body = post(f"{url}/predict", f["load"].tolist()[:10])
        assert code == 400 and "lookback=48" in body["error"]
        with urllib.request.urlopen(url + "/", timeout=30) as r:
            page = r.read().decode()
        assert "fetch('/predict'" in page and "<svg" in page and "48" in page


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    """A copy of the run with its verified ONNX export in exports/onnx (the shared run stays without)."""
    from runtime_checks import exported_copy

    return exported_copy(run.path, tmp_path_factory.mktemp("series-rt") / "run")


def test_onnx_export_of_quantiles_matches_keras(exported):
    m = json.loads((exported / "exports" / "onnx" / "export.json").read_text())
    assert m["passed"] and m["max_abs_diff"] < 1e-3
    assert m["output"]["name"] == "quantiles" and m["output"]["shape"] == [None, 12, 3]
    assert m["series"]["lookback"] == 48 and m["score"] == pytest.approx(m["keras_score"], rel=1e-4) and m["metric"] == "MAE"


def test_predict_through_the_export_answers_as_keras_without_tensorflow(exported, tmp_path):
    from runtime_checks import predict_without_tensorflow

    hist = tmp_path / "history.csv"
    hourly(n=600, seed=1).iloc[-100:].to_csv(hist, index=False)
    predict_without_tensorflow(exported, hist, f"out={tmp_path / 'onnx.csv'}")
    code, err = _cli("predict", str(exported), str(hist), f"out={tmp_path / 'keras.csv'}", "runtime=keras")
    assert code in (0, None) and "(keras)" in err
    a, b = pd.read_csv(tmp_path / "onnx.csv"), pd.read_csv(tmp_path / "keras.csv")
    assert list(a.columns) == list(b.columns) and len(a) == 12 and (a["date"] == b["date"]).all()
    np.testing.assert_allclose(a[["forecast", "q0.1", "q0.9"]], b[["forecast", "q0.1", "q0.9"]], rtol=1e-4, atol=1e-3)
