"""`tabm` (kiln/tasks/table/tabm.py): k members in one Keras model, each trained on its own loss, the mean served;
model=auto picks it for a small non-linear table, and the run exports (parity) and serves like any table run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from kiln.cli import main


def _spec_and_rows(n: int = 64, task: str = "regression"):
    from kiln.tasks.table.columns import infer_columns
    from kiln.tasks.table.spec import build_spec, encode_rows
    from kiln.tasks.table.synth import make_table

    frame = make_table(n, seed=5, task=task).drop(columns=["label"])
    y = np.linspace(-1, 1, n) if task == "regression" else np.arange(n) % 2
    classes = None if task == "regression" else ["c0", "c1"]
    spec = build_spec(frame, infer_columns(frame), "label", task, np.ones(n, bool), classes, y)
    return spec, encode_rows(frame, spec), y


def test_members_train_on_their_own_loss_and_predict_their_mean(tmp_path):
    import keras
    import tensorflow as tf

    from kiln.tasks.table.models import MODELS

    spec, x, y = _spec_and_rows(64, "classification")
    keras.utils.set_random_seed(0)
    model = MODELS.create("tabm", spec, 2, ensemble_size=4, width=16)
    xt = {k: tf.constant(v) for k, v in x.items()}
    members = np.asarray(model(xt, training=True))  # no dropout effect on shapes
    mean = np.asarray(model(xt))
    assert members.shape == (64, 4, 2) and mean.shape == (64, 2) and np.allclose(mean.sum(1), 1, atol=1e-5)
    body = np.asarray(model.body(xt, training=False))
    assert np.allclose(body.mean(1), mean, atol=1e-6) and not np.allclose(body[:, 0], body[:, 1])  # members differ
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    yt = tf.constant(y)
    loss = float(model.compute_loss(xt, yt, tf.constant(body), training=True))
    per_member = [float(keras.losses.SparseCategoricalCrossentropy()(yt, body[:, i])) for i in range(4)]
    ensemble_loss = float(keras.losses.SparseCategoricalCrossentropy()(yt, mean))
    assert abs(loss - np.mean(per_member)) < 1e-5 and abs(loss - ensemble_loss) > 1e-4  # the members' loss, not the mean's
    model.fit(xt, yt, epochs=2, batch_size=32, verbose=0)
    path = tmp_path / "tabm.keras"
    model.save(path)
    back = keras.saving.load_model(path)
    assert np.allclose(np.asarray(back(xt)), np.asarray(model(xt)), atol=1e-6)


def _curved_table(path, n: int = 260, seed: int = 0):
    """y = sin(2a) + b^2 + noise, a category shifting it: trees beat a line by far, so model=auto picks the network."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n)
    k = rng.choice(["x", "y", "z"], n)
    y = np.sin(2 * a) * 3 + b ** 2 + (k == "z") * 2 + rng.normal(0, 0.2, n)
    pd.DataFrame({"a": a.round(4), "b": b.round(4), "k": k, "y": y.round(4)}).to_csv(path, index=False)


def test_model_auto_picks_tabm_for_a_small_curved_table_and_it_exports_and_serves(tmp_path, capsys):
    from kiln.config import load_config
    from kiln.train.trainer import train

    path = tmp_path / "curve.csv"
    _curved_table(path)
    cfg = load_config(None, [f"data={path}", "target=y", f"run_dir={tmp_path / 'run'}", "epochs=30", "verbose=0", "tensorboard=false",
                             "importance=false", "evaluate.report=false", "ensemble_size=4", "width=32"])
    run = train(cfg)
    assert run.meta["model"] == "tabm" and "trees fit better" in run.meta["auto"]["model.name"]["why"]
    m = run.metrics
    assert m["test"]["r2"] > 0.6 and m["test"]["r2"] > m["baselines"]["test"]["linear"]["r2"]
    assert "verdict" in m and m["verdict"]["metric"] == "r2" and m["verdict"]["split"] == "val"
    for fmt in ("savedmodel", "tflite", "onnx"):
        out = tmp_path / fmt
        assert main(["export", str(run.path), f"format={fmt}", f"out={out}"]) in (0, None)
        info = json.loads((out / "export.json").read_text())
        assert info["agreement"] == 1.0 and info["max_abs_diff"] < 1e-3, (fmt, info)
    import socket
    import threading
    import time

    import requests
    import uvicorn

    from kiln.serve.app import create_app
    from kiln.tasks.base import task_of

    rows = [{"a": 0.5, "b": -1.0, "k": "z"}, {"a": -1.5, "b": 0.3, "k": "x"}]
    expected = task_of(run.meta).predict_outputs(run, pd.DataFrame(rows).astype(str))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(run.path, name="curve"), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                if requests.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        r = requests.post(url + "/v1/models/curve:predict", json={"instances": rows}, timeout=30)
    finally:
        srv.should_exit = True
        thread.join(10)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.asarray(r.json()["predictions"]).reshape(-1), expected.reshape(-1), rtol=1e-4, atol=1e-4)


def test_verdict_in_metrics_summary_and_report(table_run, capsys):
    """The verdict against the best baseline on val reaches metrics.json, `kiln train`'s summary and the report's summary."""
    from kiln.cli import _summary

    v = table_run.metrics["verdict"]
    assert v["split"] == "val" and v["metric"] == "accuracy" and v["baseline"] in ("dummy", "linear", "hist_gradient_boosting")
    assert v["loses"] == (v["baseline_score"] > v["model"]) and ("advice" in v) == v["loses"]
    _summary(table_run)
    assert f"kiln: verdict: {v['line']}" in capsys.readouterr().out
    page = (table_run.path / "report.html").read_text()
    assert "<b>Verdict:</b>" in page and page.index("<b>Verdict:</b>") < page.index('id="curves"')  # in the first section
