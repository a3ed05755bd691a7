"""kiln serve over real HTTP on loopback: every endpoint, every bad request and its status, batching, shutdown."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

sys.path.insert(0, str(Path(__file__).parent))

from conftest import KILN  # noqa: E402
from kiln_serving import free_port, running  # noqa: E402

KEY = "s3cret-key"
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def server(tiny_run):
    from kiln.serve.app import create_app

    app = create_app(tiny_run.path, api_key=KEY, max_body_bytes=256 * 1024, max_pixels=40_000, max_delay_ms=1)
    with running(app) as url:
        yield url


@pytest.fixture(scope="module")
def files(tiny_run):
    """The test split: paths, encoded bytes, pixels decoded as in training, and what Run.predict says."""
    from kiln.tasks.image.export import decode

    paths = tiny_run.splits[tiny_run.splits["split"] == "test"]["path"].tolist()
    return {"paths": paths, "bytes": [Path(p).read_bytes() for p in paths], "pixels": decode(tiny_run, paths),
            "predict": tiny_run.predict(paths, top_k=3), "probs": tiny_run.predict_proba(paths)}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_health_and_page_need_no_key(server):
    assert requests.get(f"{server}/v2/health/live").json() == {"live": True}
    r = requests.get(f"{server}/v2/health/ready")
    assert r.status_code == 200 and r.json() == {"ready": True}
    page = requests.get(f"{server}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and '"model": "tiny"' in page.text


def test_model_metadata(server, tiny_run):
    meta = requests.get(f"{server}/v2/models/tiny", headers=AUTH).json()  # the name defaults to the run folder's
    assert meta["name"] == "tiny" and meta["versions"] == ["1"] and meta["platform"] == "keras"
    assert meta["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, 32, 32, 3]}]
    assert meta["outputs"][0] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}
    assert meta["parameters"]["classes"] == tiny_run.classes
    assert requests.get(f"{server}/v2/models/tiny/ready", headers=AUTH).json() == {"name": "tiny", "ready": True}
    assert requests.get(f"{server}/v2/models/tiny/versions/1", headers=AUTH).json()["name"] == "tiny"
    status = requests.get(f"{server}/v1/models/tiny", headers=AUTH).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    sig = requests.get(f"{server}/v1/models/tiny/metadata", headers=AUTH).json()["metadata"]["signature_def"]
    image = sig["signature_def"]["serving_default"]["inputs"]["image"]
    assert image["dtype"] == "DT_UINT8" and [d["size"] for d in image["tensor_shape"]["dim"]] == ["-1", "32", "32", "3"]


def test_predict_upload_equals_run_predict(server, files):
    for path, data, expected in zip(files["paths"], files["bytes"], files["predict"]):
        r = requests.post(f"{server}/predict", files={"file": (Path(path).name, data, "image/png")}, headers=AUTH)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["model"] == "tiny" and got["label"] == expected["label"]
        assert [t["label"] for t in got["top_k"]] == [t[0] for t in expected["top_k"]]
        np.testing.assert_allclose([t["score"] for t in got["top_k"]], [t[1] for t in expected["top_k"]], atol=1e-5)
        assert got["latency_ms"] > 0
    raw = requests.post(f"{server}/predict?top_k=2", data=files["bytes"][0], headers={**AUTH, "Content-Type": "image/png"})
    assert raw.status_code == 200 and len(raw.json()["top_k"]) == 2
    assert raw.json()["label"] == files["predict"][0]["label"]


def test_tf_serving_predict(server, files):
    url = f"{server}/v1/models/tiny:predict"
    r = requests.post(url, json={"instances": [{"b64": b64(d)} for d in files["bytes"]]}, headers=AUTH)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], files["probs"], atol=1e-5)  # in class order
    named = requests.post(url, json={"signature_name": "serving_default",
                                     "instances": [{"image": {"b64": b64(files["bytes"][1])}}]}, headers=AUTH)
    np.testing.assert_allclose(named.json()["predictions"], files["probs"][1:2], atol=1e-5)
    pixels = requests.post(url, json={"instances": files["pixels"][:3].tolist()}, headers=AUTH)
    np.testing.assert_allclose(pixels.json()["predictions"], files["probs"][:3], atol=1e-5)
    columnar = requests.post(url, json={"inputs": {"image": [{"b64": b64(files["bytes"][2])}]}}, headers=AUTH)
    np.testing.assert_allclose(columnar.json()["outputs"], files["probs"][2:3], atol=1e-5)
    versioned = requests.post(f"{server}/v1/models/tiny/versions/1:predict", json={"instances": files["pixels"][:1].tolist()},
                              headers={"Authorization": f"Bearer {KEY}"})
    assert versioned.status_code == 200


def test_open_inference_protocol_v2(server, files):
    url = f"{server}/v2/models/tiny/infer"
    n = len(files["bytes"])
    r = requests.post(url, json={"id": "req-1", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [n],
                                                             "data": [b64(d) for d in files["bytes"]]}]}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "req-1" and body["model_name"] == "tiny"
    probs = {o["name"]: o for o in body["outputs"]}["probabilities"]
    assert probs["datatype"] == "FP32" and probs["shape"] == [n, 3]
    np.testing.assert_allclose(np.reshape(probs["data"], (n, 3)), files["probs"], atol=1e-5)
    labels = {o["name"]: o for o in body["outputs"]}["label"]["data"]
    assert labels == [p["label"] for p in files["predict"]]

    px = files["pixels"][:2]
    r = requests.post(url, json={"inputs": [{"name": "image", "datatype": "UINT8", "shape": list(px.shape),
                                             "data": px.reshape(-1).tolist()}], "outputs": [{"name": "probabilities"}]},
                      headers=AUTH)
    assert [o["name"] for o in r.json()["outputs"]] == ["probabilities"]
    np.testing.assert_allclose(np.reshape(r.json()["outputs"][0]["data"], (2, 3)), files["probs"][:2], atol=1e-5)


def _uint8(shape, data=None, name="image", datatype="UINT8"):
    size = int(np.prod(shape))
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data if data is not None else [0] * size}]}


V2 = "/v2/models/tiny/infer"
V1 = "/v1/models/tiny:predict"
BAD = [
    # (case, method, path, request kwargs, status, part of the error)
    ("malformed JSON (v2)", "post", V2, {"data": b'{"inputs": ['}, 400, "malformed JSON"),
    ("malformed JSON (v1)", "post", V1, {"data": b"instances"}, 400, "malformed JSON"),
    ("empty body", "post", V2, {"data": b""}, 400, "empty"),
    ("JSON not an object", "post", V2, {"json": [1, 2]}, 400, "must be an object"),
    ("v2 wrong shape", "post", V2, {"json": _uint8([1, 16, 16, 3])}, 400, "[N, 32, 32, 3]"),
    ("v2 data length", "post", V2, {"json": _uint8([1, 32, 32, 3], [0] * 10)}, 400, "needs 3072"),
    ("v2 ragged data", "post", V2, {"json": _uint8([1, 32, 32, 3], [[1, 2], [3]])}, 400, "rectangular"),
    ("v2 value over 255", "post", V2, {"json": _uint8([1, 32, 32, 3], [300] * 3072)}, 400, "0-255"),
    ("v2 strings as pixels", "post", V2, {"json": _uint8([1, 32, 32, 3], ["a"] * 3072)}, 400, "numbers"),
    ("v2 datatype", "post", V2, {"json": _uint8([1, 32, 32, 3], datatype="FP32")}, 400, "datatype"),
    ("v2 input name", "post", V2, {"json": _uint8([1, 32, 32, 3], name="pixels")}, 400, "unknown input"),
    ("v2 no inputs", "post", V2, {"json": {"inputs": []}}, 400, "one tensor"),
    ("v2 unknown output", "post", V2, {"json": {**_uint8([1, 32, 32, 3]), "outputs": [{"name": "logits"}]}}, 400, "unknown output"),
    ("v2 BYTES not base64", "post", V2, {"json": _uint8([1], ["%%%"], datatype="BYTES")}, 400, "base64"),
    ("v2 BYTES not an image", "post", V2, {"json": _uint8([1], [b64(b"not an image")], datatype="BYTES")}, 400, "could not be decoded"),
    ("v2 BYTES shape", "post", V2, {"json": _uint8([2], [b64(b"x")], datatype="BYTES")}, 400, "BYTES input must be [N]"),
    ("v1 pixel shape", "post", V1, {"json": {"instances": [[[0, 0, 0]]]}}, 400, "[32, 32, 3]"),
    ("v1 instances and inputs", "post", V1, {"json": {"instances": [], "inputs": []}}, 400, "exactly one"),
    ("v1 empty instances", "post", V1, {"json": {"instances": []}}, 400, "non-empty"),
    ("v1 bad b64 image", "post", V1, {"json": {"instances": [{"b64": b64(b"\x89PNG\r\n\x1a\n broken")}]}}, 400, "could not be decoded"),
    ("v1 unknown key", "post", V1, {"json": {"instances": [{"b65": "x"}]}}, 400, "b64"),
    ("v1 signature", "post", V1, {"json": {"signature_name": "other", "instances": [[0]]}}, 400, "signature_name"),
    ("v1 verb", "post", "/v1/models/tiny:classify", {"json": {}}, 400, ":predict"),
    ("predict not an image", "post", "/predict", {"files": {"file": ("x.png", b"hello", "image/png")}}, 400, "could not be decoded"),
    ("predict truncated PNG", "post", "/predict", {"files": {"file": ("x.png", png(32, 32)[:60], "image/png")}}, 400, "could not be decoded"),
    ("predict empty file", "post", "/predict", {"files": {"file": ("x.png", b"", "image/png")}}, 400, "empty"),
    ("predict no file", "post", "/predict", {"files": {"top_k": (None, "3")}}, 400, "no image"),
    ("predict bad top_k", "post", "/predict?top_k=abc", {"files": {"file": ("x.png", png(8, 8), "image/png")}}, 400, "top_k"),
    ("predict content type", "post", "/predict", {"json": {"image": "x"}}, 400, "content type"),
    ("body over the limit", "post", "/predict", {"data": b"\0" * 300_000, "headers": {**AUTH, "Content-Type": "image/png"}}, 413, "limit"),
    ("chunked body over the limit", "post", V2, {"data": (b"\0" * 65536 for _ in range(5))}, 413, "limit"),
    ("image over the pixel limit", "post", "/predict", {"files": {"file": ("big.png", png(300, 300), "image/png")}}, 413, "pixels"),
    ("v2 image over the pixel limit", "post", V2, {"json": _uint8([1], [b64(png(250, 250))], datatype="BYTES")}, 413, "pixels"),
    ("missing API key", "get", "/v2/models/tiny", {"headers": {}}, 401, "API key"),
    ("wrong API key", "post", V2, {"json": _uint8([1, 32, 32, 3]), "headers": {"X-API-Key": "s3cret-kez"}}, 401, "API key"),
    ("wrong bearer token", "get", "/metrics", {"headers": {"Authorization": "Bearer nope"}}, 401, "API key"),
    ("unknown model (v2 metadata)", "get", "/v2/models/other", {}, 404, "'other'"),
    ("unknown model (v2 infer)", "post", "/v2/models/other/infer", {"json": _uint8([1, 32, 32, 3])}, 404, "'other'"),
    ("unknown model (v1)", "post", "/v1/models/other:predict", {"json": {"instances": [[0]]}}, 404, "'other'"),
    ("unknown model (v1 status)", "get", "/v1/models/other", {}, 404, "'other'"),
    ("unknown version", "get", "/v2/models/tiny/versions/7", {}, 404, "version"),
    ("unknown route", "get", "/v3/everything", {}, 404, "not found"),
    ("wrong method", "get", V2, {}, 405, "Method Not Allowed"),
]


@pytest.mark.parametrize("case,method,path,kwargs,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_4xx_and_an_error(server, case, method, path, kwargs, status, message):
    kwargs = {"headers": AUTH, **kwargs}  # cases about the key bring their own headers
    r = getattr(requests, method)(f"{server}{path}", timeout=30, **kwargs)
    assert r.status_code == status, (case, r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and message in body["error"], body


def _metric(text: str, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def test_metrics_in_prometheus_format(server, files):
    before = requests.get(f"{server}/metrics", headers=AUTH).text
    requests.post(f"{server}/predict", files={"file": ("a.png", files["bytes"][0], "image/png")}, headers=AUTH)
    requests.post(f"{server}/predict", files={"file": ("a.png", b"junk", "image/png")}, headers=AUTH)
    r = requests.get(f"{server}/metrics", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = r.text
    ok, bad = 'kiln_requests_total{route="/predict",code="200"}', 'kiln_errors_total{route="/predict",code="400"}'
    assert _metric(after, ok) == _metric(before, ok) + 1
    assert _metric(after, bad) == _metric(before, bad) + 1
    assert _metric(after, "kiln_examples_total") == _metric(before, "kiln_examples_total") + 1
    for name in ("# TYPE kiln_request_duration_seconds histogram", 'kiln_request_duration_seconds_bucket{route="/predict",le="+Inf"}',
                 "# TYPE kiln_batch_size histogram", 'kiln_batch_size_bucket{le="1.0"}', "kiln_batch_size_count",
                 "kiln_inference_duration_seconds_sum", "kiln_queue_wait_seconds_count", "kiln_requests_in_flight",
                 'kiln_errors_total{route="/v2/models/{name}",code="401"}'):
        assert name in after, name


def test_micro_batcher_groups_requests_and_routes_results():
    from kiln.serve.batching import MicroBatcher

    sizes = []

    def predict(x):  # (n, 1, 1, 1) -> (n, 1): each row's own value, so mixed-up results would show
        sizes.append(len(x))
        return x.reshape(len(x), 1).astype(np.float32) * 2

    async def scenario(max_batch_size):
        sizes.clear()
        batcher = MicroBatcher(predict, max_batch_size=max_batch_size, max_delay_ms=50)
        await batcher.start()
        requests_ = [np.full((1, 1, 1, 1), i, np.uint8) for i in range(10)] + [np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1)]
        results = await asyncio.gather(*(batcher.predict(r) for r in requests_))
        await batcher.stop()
        for r, out in zip(requests_, results):
            np.testing.assert_array_equal(out, r.reshape(len(r), 1) * 2)
        return list(sizes)

    assert asyncio.run(scenario(4)) == [4, 4, 2, 6]  # a request bigger than the batch runs on its own
    assert asyncio.run(scenario(1)) == [1] * 10 + [6]  # batching off: one call per request
    assert asyncio.run(scenario(3)) == [3, 3, 3, 1, 6]
    assert asyncio.run(scenario(8)) == [8, 8]  # the last 2 singles and the 6-image request share one call


def test_batches_are_padded_to_a_few_warmed_sizes():
    from kiln.serve.batching import MicroBatcher, bucket_sizes

    assert bucket_sizes(1) == [1] and bucket_sizes(5) == [1, 2, 4, 5]
    assert bucket_sizes(32) == [1, 2, 4, 8, 16, 24, 32]
    seen = []
    batcher = MicroBatcher(lambda x: seen.append(len(x)) or x.reshape(len(x), -1)[:, :1].astype(np.float32), max_batch_size=32)
    batcher.warm_inputs(np.zeros((1, 1, 1, 1), np.uint8))
    assert seen == [1, 2, 4, 8, 16, 24, 32]
    x = np.arange(11, dtype=np.uint8).reshape(11, 1, 1, 1)
    np.testing.assert_array_equal(batcher._call(x), x.reshape(11, 1))  # padded to 16, sliced back to 11
    assert seen[-1] == 16


def test_lambda_layer_is_refused(tiny_run, tmp_path):
    import keras

    from kiln.errors import KilnError
    from kiln.serve.app import create_app

    run_dir = tmp_path / "lambda-run"
    run_dir.mkdir()
    shutil.copy(tiny_run.path / "run.json", run_dir / "run.json")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x)).save(run_dir / "model.keras")
    with pytest.raises(KilnError, match="Lambda layer .* safe mode"):
        create_app(run_dir)


def test_binary_run_uses_its_threshold(tiny_run, tmp_path):
    """A two-class run with threshold 0.9 in run.json: p(class_b) = 0.73 is below it, so /predict says class_a."""
    import keras

    from kiln.serve.app import create_app

    run_dir = tmp_path / "binary"
    run_dir.mkdir()
    meta = json.loads((tiny_run.path / "run.json").read_text())
    meta.update(classes=["class_a", "class_b"], threshold=0.9)
    (run_dir / "run.json").write_text(json.dumps(meta))
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    out = keras.layers.Dense(2, activation="softmax", name="predictions", kernel_initializer="zeros",
                             bias_initializer=keras.initializers.Constant([0.0, 1.0]))(x)
    keras.Model(inputs, out).save(run_dir / "model.keras")
    with running(create_app(run_dir, max_delay_ms=0)) as url:
        r = requests.post(f"{url}/predict", files={"file": ("a.png", png(32, 32), "image/png")}).json()
        assert r["top_k"][0]["label"] == "class_b" and r["top_k"][0]["score"] == pytest.approx(0.731, abs=1e-3)
        assert r["label"] == "class_a" and r["threshold"] == 0.9
        v2 = requests.post(f"{url}/v2/models/binary/infer", json=_uint8([1, 32, 32, 3])).json()
        assert {o["name"]: o for o in v2["outputs"]}["label"]["data"] == ["class_a"]


def test_serves_an_export_folder(tiny_run, files, tmp_path):
    from kiln.export.export import export_run
    from kiln.serve.app import create_app

    out = tmp_path / "tflite"
    export_run(tiny_run.path, "tflite", out=str(out), timing={"latency_runs": 3, "batch_runs": 1, "batch_size": 4})
    with running(create_app(out)) as url:
        meta = requests.get(f"{url}/v2/models/tiny").json()  # named after the run it came from
        assert meta["platform"] == "tflite"
        r = requests.post(f"{url}/v1/models/tiny:predict", json={"instances": [{"b64": b64(d)} for d in files["bytes"]]})
        # a float32 TFLite export: the Keras graph with float32 operations in another order, on any CPU
        np.testing.assert_allclose(r.json()["predictions"], files["probs"], atol=1e-5)


def test_cli_serve_batches_and_shuts_down_gracefully(tiny_run, files):
    """`kiln serve` in its own process: name=, concurrent requests share micro-batches, SIGTERM lets in-flight finish."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([KILN, "serve", str(tiny_run.path), f"port={port}", "name=shapes", "max_delay_ms=1000",
                             "max_batch_size=8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            try:
                if requests.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "kiln serve did not become ready"
            time.sleep(0.2)
        assert requests.get(f"{url}/v2/models/shapes").status_code == 200
        assert requests.get(f"{url}/v2/models/tiny").status_code == 404

        barrier, results = threading.Barrier(6), []

        def post(i):
            barrier.wait()
            r = requests.post(f"{url}/predict", files={"file": ("a.png", files["bytes"][i], "image/png")}, timeout=30)
            results.append((i, r.status_code, r.json()["label"]))

        threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert sorted(results) == [(i, 200, files["predict"][i]["label"]) for i in range(6)]
        metrics = requests.get(f"{url}/metrics").text
        assert _metric(metrics, "kiln_examples_total") == 6
        assert _metric(metrics, "kiln_batch_size_count") < 6  # concurrent requests shared model calls

        in_flight = {}
        slow = threading.Thread(target=lambda: in_flight.update(r=requests.post(
            f"{url}/predict", files={"file": ("a.png", files["bytes"][0], "image/png")}, timeout=30)))
        slow.start()  # waits up to max_delay_ms=1000 in the batcher
        while _metric(requests.get(f"{url}/metrics").text, "kiln_requests_in_flight") < 2:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        slow.join(30)
        assert in_flight["r"].status_code == 200 and in_flight["r"].json()["label"] == files["predict"][0]["label"]
        assert proc.wait(30) == 0
        out, err = proc.communicate()
        assert "serving shapes" in out and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serve_rejects_a_folder_that_is_not_a_run(tmp_path, capsys):
    from kiln.cli import main

    assert main(["serve", str(tmp_path)]) == 2
    assert "neither a run folder" in capsys.readouterr().err


def test_cli_serve_on_a_taken_port_is_one_line(tiny_run, capsys):
    import socket

    from kiln.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(tiny_run.path), f"port={port}"]) == 2
    assert f"serve received port={port}; cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_rotated_jpeg_and_bmp_match_run_predict(server, tiny_run, tmp_path):
    """Files the pipeline decodes with Pillow (EXIF rotation, formats tf.io lacks) get the same pixels when uploaded."""
    from PIL import Image

    src = Image.open(tiny_run.splits[tiny_run.splits["split"] == "test"]["path"].iloc[0]).convert("RGB")
    rotated, bmp = tmp_path / "rotated.jpg", tmp_path / "plain.bmp"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    src.transpose(Image.Transpose.ROTATE_90).save(rotated, quality=95, exif=exif)
    src.save(bmp)
    for path in (rotated, bmp):
        expected = tiny_run.predict([str(path)], top_k=3)[0]
        r = requests.post(f"{server}/predict", files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
                          headers=AUTH).json()
        assert r["label"] == expected["label"]
        np.testing.assert_allclose([t["score"] for t in r["top_k"]], [t[1] for t in expected["top_k"]], atol=1e-5)


BIG = 8 * 1024 * 1024  # far more than loopback socket buffers hold, so an unread body resets the connection


@pytest.fixture(scope="module")
def roomy_server(tiny_run):
    """A server whose body limit is above BIG, so 401 and 404 are the first answers a big body gets."""
    from kiln.serve.app import create_app

    app = create_app(tiny_run.path, api_key=KEY, max_body_bytes=4 * BIG, max_delay_ms=1)
    with running(app) as url:
        yield url


EARLY = [
    # (case, server fixture, path, headers, status): rejections answered before the handler reads the body
    ("body over the limit", "server", V1, {**AUTH, "Content-Type": "application/json"}, 413),
    ("missing API key", "roomy_server", V1, {"Content-Type": "application/json"}, 401),
    ("unknown model", "roomy_server", "/v1/models/other:predict", {**AUTH, "Content-Type": "application/json"}, 404),
]


@pytest.mark.parametrize("case,where,path,headers,status", EARLY, ids=[e[0] for e in EARLY])
def test_early_rejection_is_readable_by_a_client_that_sends_its_whole_body_first(request, case, where, path, headers, status):
    """urllib writes the whole body before reading: the server must drain it (a lingering close) or the
    client gets ConnectionResetError instead of the answer."""
    import urllib.error
    import urllib.request

    url = request.getfixturevalue(where)
    body = b'{"instances": [' + b"0," * (BIG // 2) + b"0]}"
    req = urllib.request.Request(f"{url}{path}", data=body, headers=headers, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, timeout=30)
    assert caught.value.code == status, case
    assert set(json.loads(caught.value.read())) == {"error"}


def _raw_answer(url: str, head: str, body: bytes = b"") -> tuple[str, float]:
    """Send a raw request head (and part of a body) over a socket; the first line of the answer and its wait."""
    import socket

    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + body)
        started = time.monotonic()
        answer = sock.recv(65536).decode("latin-1")
    return answer.split("\r\n")[0], time.monotonic() - started


def test_drain_is_bounded(roomy_server):
    """No draining past drain_bytes, nor for a client that waits for 100 Continue: the answer comes at once."""
    from kiln.serve.app import DRAIN_SECONDS, ServeOptions

    assert ServeOptions().drain_bytes >= 64 * 1024 * 1024  # the 40 MiB upload is drained by default
    path = "/v1/models/tiny:predict"
    line, waited = _raw_answer(roomy_server, f"POST {path} HTTP/1.1\nHost: x\nContent-Length: {200 << 20}\n\n", b"0" * 65536)
    assert line.startswith("HTTP/1.1 401") and waited < DRAIN_SECONDS / 2, (line, waited)  # 200 MiB > drain_bytes
    line, waited = _raw_answer(roomy_server, f"POST {path} HTTP/1.1\nHost: x\nContent-Length: {BIG}\nExpect: 100-continue\n\n")
    assert line.startswith("HTTP/1.1 401") and waited < DRAIN_SECONDS / 2, (line, waited)  # not "100 Continue"


def test_several_named_outputs_reach_each_request():
    """A predictor with several named outputs (a score and a flag): every request gets its own rows of each, and the
    shared helpers answer them in KServe v2 and TF Serving form."""
    from kiln.serve.batching import MicroBatcher
    from kiln.serve.routes import tf_serving_predictions, v2_outputs

    class TwoOutputs:
        output_names = ["score", "flag"]

        def outputs(self, x):
            score = x.reshape(len(x), -1).sum(1).astype(np.float32)
            return {"score": score, "flag": (score > 5).astype(np.float32)}

        def __call__(self, x):
            return self.outputs(x)["score"]

    async def scenario():
        batcher = MicroBatcher(TwoOutputs(), max_batch_size=8, max_delay_ms=50, all_outputs=True)
        await batcher.start()
        out = await asyncio.gather(*(batcher.predict(np.full((k, 1), k, np.float32)) for k in (1, 2, 3)))
        await batcher.stop()
        return out

    one, two, three = asyncio.run(scenario())
    assert set(one) == {"score", "flag"} and one["score"].tolist() == [1.0] and two["score"].tolist() == [2.0, 2.0]
    assert three["flag"].tolist() == [0.0, 0.0, 0.0] and len(three["score"]) == 3
    v2 = v2_outputs(two)
    assert [o["name"] for o in v2] == ["score", "flag"] and v2[0]["shape"] == [2] and v2[0]["datatype"] == "FP32"
    assert tf_serving_predictions(two) == [{"score": 2.0, "flag": 0.0}, {"score": 2.0, "flag": 0.0}]
    assert tf_serving_predictions({"score": two["score"]}) == [2.0, 2.0]
