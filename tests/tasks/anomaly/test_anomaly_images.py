"""An image folder as anomaly data: conv2d trains on the normal sub-folder, the `anomaly` sub-folder is scored in
val / test, exports keep score and flag, the server takes base64 image files."""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kiln.tasks.anomaly.synth import write_images

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "serve"))
QUIET = {"train": {"verbose": 0, "tensorboard": False, "doctor": False}, "evaluate": {"report": False}}


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    import kiln

    root = tmp_path_factory.mktemp("anomaly-images")
    write_images(root / "imgs", 120, 20, size=16)
    return kiln.train(task="anomaly", data=str(root / "imgs"), size=16, epochs=15, batch_rows=16, run_dir=str(root / "run"), seed=0, **QUIET)


def test_images_train_on_normal_and_score_the_anomaly_folder(image_run):
    meta, m = image_run.meta, image_run.metrics
    assert meta["model"] == "conv2d" and meta["anomaly"]["kind"] == "image" and meta["counts"]["train"] > 0
    assert m["test"]["anomalies"] > 0 and m["test"]["roc_auc"] >= 0.8
    assert (image_run.path / "plots" / "worst.png").is_file()
    out = image_run.predict([str(Path(meta["source"]["path"]) / "anomaly")])
    assert len(out) == 20 and {"path", "score", "is_anomaly"} <= set(out[0])


def test_tflite_export_and_server_answer_score_and_flag(image_run, tmp_path):
    import kiln
    from kiln_serving import running

    from kiln.serve.app import create_app

    m = kiln.export_run(image_run.path, "tflite", out=str(tmp_path / "tfl"), timing={"latency_runs": 2, "batch_runs": 1, "batch_size": 4})
    assert m["passed"] and set(m["outputs_parity"]) == {"score", "is_anomaly"}
    png = base64.b64encode((Path(image_run.meta["source"]["path"]) / "anomaly" / "000.png").read_bytes()).decode()
    app = create_app(tmp_path / "tfl")
    name = app.state.kiln.model.name

    def post(path, body):
        req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    with running(app) as url:
        code, body = post(f"/v1/models/{name}:predict", {"instances": [{"b64": png}]})
        assert code == 200 and body["predictions"][0]["is_anomaly"] == (body["predictions"][0]["score"] > m["threshold"])
        code, body = post(f"/v2/models/{name}/infer", {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [png]}]})
        assert code == 200 and [o["name"] for o in body["outputs"]] == ["score", "is_anomaly"]
        code, body = post(f"/v1/models/{name}:predict", {"instances": [{"b64": "bm90IGFuIGltYWdl"}]})
        assert code == 400 and "not an image" in body["error"]


def _cli(*args) -> tuple[int, str]:
    import contextlib
    import io

    from kiln.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(args))
    return code, err.getvalue().strip()


def test_bad_image_folders_are_one_line(tmp_path):
    write_images(tmp_path / "only_bad", 0, 6, size=16)
    code, err = _cli("train", "task=anomaly", f"data={tmp_path / 'only_bad'}", "size=16", f"run_dir={tmp_path / 'r'}")
    assert code == 2 and "every row is labelled anomalous" in err and len(err.splitlines()) == 1
    write_images(tmp_path / "ok", 10, 2, size=16)
    code, err = _cli("train", "task=anomaly", f"data={tmp_path / 'ok'}", "anomaly_label=broken", f"run_dir={tmp_path / 'r'}")
    assert code == 2 and "no sub-folder is named so (classes: anomaly, normal)" in err
    assert not (tmp_path / "r").exists()
