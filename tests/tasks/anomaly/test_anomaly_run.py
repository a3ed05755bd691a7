"""Anomaly runs end to end on tiny generated data: a series of two sensors with injected faults (conv1d), a table
with a VAE (own train_step), predict / evaluate / export / serve with score and flag, bad input in one line."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kiln.tasks.anomaly.synth import make_series, make_table

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "serve"))
QUIET = {"train": {"verbose": 0, "tensorboard": False, "doctor": False}, "evaluate": {"report": False}}


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    import kiln

    root = tmp_path_factory.mktemp("anomaly-series")
    make_series(900, seed=1).to_csv(root / "s.csv", index=False)
    return kiln.train(task="anomaly", data=str(root / "s.csv"), time="time", label="label", window=24, epochs=8, normalize=True,
                      run_dir=str(root / "run"), seed=0, **QUIET)


def _cli(*args) -> tuple[int, str, str]:
    from kiln.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue().strip(), err.getvalue().strip()


def test_series_windows_find_the_faults_and_store_the_threshold(series_run):
    meta = json.loads((series_run.path / "run.json").read_text())
    m = json.loads((series_run.path / "metrics.json").read_text())
    assert meta["model"] == "conv1d" and meta["anomaly"]["window"] == 24
    assert meta["threshold"] == m["threshold"]["value"] and m["threshold"]["rule"] == "max_f1" and "val" in m["threshold"]["meaning"]
    assert m["test"]["roc_auc"] >= 0.9 and m["test"]["anomalies"] > 0
    assert set(m["baselines"]["test"]) == {"pca", "isolation_forest", "lof", "seasonal_naive"} and meta["anomaly"]["season"] == 24
    assert (series_run.path / "plots" / "scores.png").is_file() and (series_run.path / "plots" / "roc_pr.png").is_file()
    from kiln.run import load_run
    from kiln.tasks.anomaly.layers import error_layer

    scale = np.asarray(error_layer(load_run(series_run.path).model).scale)  # normalize=true: 1 / mean training error, saved
    assert scale.shape == (24 * 2,) and scale.min() > 1 and m["test"]["score_normal"] < 3


def test_predict_writes_score_and_flag_per_window_and_evaluate_tries_another_rule(series_run, tmp_path):
    code, out, _ = _cli("predict", str(series_run.path), series_run.meta["source"]["path"], f"out={tmp_path / 'p.csv'}")
    p = pd.read_csv(tmp_path / "p.csv")
    assert code == 0 and list(p.columns) == ["start", "end", "score", "is_anomaly"]
    assert ((p["score"] > series_run.meta["threshold"]).astype(int) == p["is_anomaly"]).all()
    code, out, _ = _cli("evaluate", str(series_run.path), "rule=fpr<=0.2")
    r = json.loads(out)
    assert code == 0 and r["threshold_from"] == "rule=fpr<=0.2" and r["threshold"] != series_run.meta["threshold"]
    code, out, _ = _cli("evaluate", str(series_run.path), "threshold=0.25")  # kiln evaluate's threshold=: a score here
    assert code == 0 and json.loads(out)["threshold"] == 0.25


def test_export_and_serve_answer_score_and_flag(series_run, tmp_path):
    import kiln
    from kiln_serving import running

    from kiln.serve.app import create_app

    m = kiln.export_run(series_run.path, "onnx", out=str(tmp_path / "onnx"), timing={"latency_runs": 2, "batch_runs": 1, "batch_size": 4})
    assert m["passed"] and set(m["outputs_parity"]) == {"score", "is_anomaly"}
    x = make_series(900, seed=1)[["x", "y"]].to_numpy()[-24:].tolist()
    app = create_app(tmp_path / "onnx")
    name = app.state.kiln.model.name
    with running(app) as url:
        req = urllib.request.Request(f"{url}/v1/models/{name}:predict", data=json.dumps({"instances": [x, x]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            preds = json.loads(r.read())["predictions"]
        assert len(preds) == 2 and set(preds[0]) == {"score", "is_anomaly"} and preds[0]["is_anomaly"] == (preds[0]["score"] > m["threshold"])
        bad = urllib.request.Request(f"{url}/v1/models/{name}:predict", data=json.dumps({"instances": [x[:5]]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(bad, timeout=30)
        assert e.value.code == 400 and "[24, 2]" in json.loads(e.value.read())["error"]


def test_vae_trains_with_its_own_step_saves_and_exports(tmp_path):
    import kiln
    from kiln.run import load_run

    make_table(300, 16, seed=2).to_csv(tmp_path / "t.csv", index=False)
    run = kiln.train(task="anomaly", data=str(tmp_path / "t.csv"), label="label", model="vae", epochs=4, denoise=0.1,
                     run_dir=str(tmp_path / "run"), seed=0, **QUIET)
    assert {"loss", "kl", "val_loss"} <= set(run.history.columns)
    again = load_run(run.path)
    from kiln.tasks.anomaly.layers import error_layer

    assert not np.allclose(np.asarray(error_layer(again.model).scale), 1.0)  # normalize=auto (a table): set after fitting, saved
    rows = make_table(300, 16, seed=2).drop(columns=["label"]).astype(str).iloc[:5]
    out = again.predict(rows)
    assert {"score", "is_anomaly", "share_a", "share_kind"} <= set(out[0])
    assert abs(sum(v for k, v in out[0].items() if k.startswith("share_")) - 1) < 0.01
    m = kiln.export_run(run.path, "savedmodel", out=str(tmp_path / "sm"), timing={"latency_runs": 2, "batch_runs": 1, "batch_size": 4})
    assert m["passed"]


@pytest.mark.parametrize("edit,keys,why", [
    ("all_bad", [], "every row is labelled anomalous"),
    (None, ["anomaly_label=fraud"], "no cell of label holds it"),
    (None, ["label=", "rule=max_f1"], "the rule needs labelled anomalies"),
    ("words", [], "are neither anomaly"),
])
def test_bad_training_input_is_one_line_and_writes_nothing(tmp_path, edit, keys, why):
    f = make_table(60, 4)
    if edit == "all_bad":
        f["label"] = 1
    if edit == "words":
        f["label"] = f["label"].map({0: "fine", 1: "broken"})
    f.to_csv(tmp_path / "d.csv", index=False)
    args = {"label": "label", **dict(k.split("=") for k in keys)}
    code, _, err = _cli("train", "task=anomaly", f"data={tmp_path / 'd.csv'}", *[f"{k}={v}" for k, v in args.items()],
                        f"run_dir={tmp_path / 'r'}")
    assert code == 2 and why in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_evaluating_a_file_without_anomalies_is_one_line(series_run, tmp_path):
    f = make_series(300, seed=3)
    f["label"] = 0
    f.to_csv(tmp_path / "clean.csv", index=False)
    code, _, err = _cli("evaluate", str(series_run.path), f"data={tmp_path / 'clean.csv'}", f"out={tmp_path / 'm.json'}")
    assert code == 2 and "holds no anomalies" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.json").exists()
