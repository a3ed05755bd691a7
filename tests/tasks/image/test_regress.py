"""Image regression end to end on generated images whose brightness is the target: train, metrics beside the
baselines, plots, predict, evaluate, report, exports with value parity, the three serving protocols; bad targets."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "serve"))
from conftest import KILN  # noqa: E402
from synth import make_value_images  # noqa: E402


@pytest.fixture(scope="module")
def value_run(tmp_path_factory):
    import kiln

    root = tmp_path_factory.mktemp("regress")
    csv = make_value_images(root / "data", n=60, size=16, seed=0)
    run = kiln.train(data=str(csv), target="brightness", model="linear", epochs=30, image_size=16, lr=0.01, seed=0,
                     run_dir=str(root / "run"), train={"verbose": 0, "tensorboard": False})
    return run, csv, root


def test_trains_a_value_head_with_metrics_baselines_and_plots(value_run):
    run, _, _ = value_run
    meta = json.loads((run.path / "run.json").read_text())
    assert meta["task"] == "image" and meta["classes"] is None and meta["target"]["name"] == "brightness"
    assert run.task.returns(meta) == "value"
    assert [m.key for m in run.task.headline_metrics(meta)] == ["r2", "rmse", "mae"]
    metrics = run.metrics
    assert set(metrics["test"]) >= {"r2", "rmse", "mae", "bias", "n"}
    assert set(metrics["baselines"]["test"]) == {"mean", "ridge_pixels", "gradient_boosting_pixels"}
    assert metrics["test"]["rmse"] < metrics["baselines"]["test"]["mean"]["rmse"]  # it learned the brightness
    assert run.model.output_shape == (None, 1)
    for name in ("predicted_vs_actual_test.png", "residuals_test.png"):
        assert (run.path / "plots" / name).stat().st_size > 1000
    assert 'id="regression-plots"' in (run.path / "report.html").read_text()
    assert run.evaluate(split="test") == {k: metrics["test"][k] for k in ("r2", "rmse", "mae", "bias", "n")}


def test_predict_answers_a_value_per_image(value_run, tmp_path):
    run, csv, _ = value_run
    images = sorted((csv.parent / "img").glob("*.png"))[:3]
    out = run.predict([str(p) for p in images], out=str(tmp_path / "p.csv"))
    assert [sorted(r) for r in out] == [["path", "value"]] * 3
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "path,brightness"


def test_exports_keep_the_value_within_parity(value_run):
    import kiln

    run, _, root = value_run
    for fmt in ("keras", "onnx"):
        m = kiln.export_run(run.path, fmt, out=str(root / "exports" / fmt), timing={"latency_runs": 2, "batch_runs": 1, "batch_size": 4})
        assert m["passed"] and m["metric"] == "MAE" and "spread" in m["agreement_rule"], (fmt, m)
        assert m["output"]["name"] == "value" and m["target"]["name"] == "brightness"


def test_serves_a_value_over_every_protocol(value_run):
    from kiln_serving import running

    from kiln.serve.app import create_app

    run, csv, _ = value_run
    png = sorted((csv.parent / "img").glob("*.png"))[0].read_bytes()
    app = create_app(run.path)
    name = app.state.kiln.model.name
    expected = float(run.predict([str(sorted((csv.parent / "img").glob("*.png"))[0])])[0]["value"])

    def post(url, body, ctype="application/json"):
        req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    import base64

    b64 = base64.b64encode(png).decode()
    with running(app) as url:
        one = post(url + "/predict", png, "image/png")
        assert one["target"] == "brightness" and one["value"] == pytest.approx(expected, abs=1e-4)
        v2 = post(f"{url}/v2/models/{name}/infer", json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64]}]}).encode())
        assert v2["outputs"][0]["name"] == "value" and v2["outputs"][0]["shape"] == [1, 1]
        v1 = post(f"{url}/v1/models/{name}:predict", json.dumps({"instances": [{"b64": b64}]}).encode())
        assert np.asarray(v1["predictions"]).shape == (1, 1)
        with urllib.request.urlopen(f"{url}/v2/models/{name}", timeout=30) as resp:
            assert json.loads(resp.read())["outputs"] == [{"name": "value", "datatype": "FP32", "shape": [-1, 1]}]


@pytest.mark.parametrize("target,csv_text,words", [
    ("brightness", "path,brightness\nimg/0.png,bright\nimg/1.png,2.5\n", ["target=brightness", "holds text", "line 2"]),
    ("angle", "path,brightness\nimg/0.png,1.0\nimg/1.png,2.5\n", ["target=angle", "no such column", "target=COL"]),
])
def test_a_bad_target_is_one_line_and_exit_2(tmp_path, target, csv_text, words):
    make_value_images(tmp_path, n=2, size=8)
    (tmp_path / "bad.csv").write_text(csv_text)
    p = subprocess.run([KILN, "train", f"data={tmp_path / 'bad.csv'}", f"target={target}", "epochs=1"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = [line for line in p.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and all(w in lines[0] for w in words), p.stderr
