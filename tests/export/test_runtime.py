"""`kiln predict` on an image run through its verified ONNX export: the same answers as Keras, without
TensorFlow; runtime=onnx without an export (or with a stale one) is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from runtime_checks import exported_copy, predict, predict_without_tensorflow


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    return exported_copy(tiny_run.path, tmp_path_factory.mktemp("imgrt") / "run")


def _images(run_path, n=6):
    import pandas as pd

    rows = pd.read_csv(run_path / "splits.csv")
    return rows[rows["split"] == "test"]["path"].tolist()[:n]


def test_auto_uses_the_export_and_answers_as_keras(exported, capsys):
    images = _images(exported)
    rc, onnx_rows, err = predict(capsys, exported, *images, "top_k=3")
    assert rc == 0 and "(onnxruntime, exports/onnx)" in err
    rc, keras_rows, err = predict(capsys, exported, *images, "top_k=3", "runtime=keras")
    assert rc == 0 and "(keras)" in err
    assert [r["label"] for r in onnx_rows] == [r["label"] for r in keras_rows] and len(onnx_rows) == len(images)
    np.testing.assert_allclose([r["score"] for r in onnx_rows], [r["score"] for r in keras_rows], atol=1e-5)


def test_onnx_predict_never_imports_tensorflow(exported):
    done = predict_without_tensorflow(exported, _images(exported, 1)[0])
    assert json.loads(done.stdout.splitlines()[0])["label"] in json.loads((exported / "run.json").read_text())["classes"]


def test_runtime_onnx_without_a_current_export_is_one_line(exported, tiny_run, tmp_path, capsys):
    image = _images(exported, 1)[0]
    rc, _, err = predict(capsys, tiny_run.path, image, "runtime=onnx")  # the shared run has no export
    assert rc == 2 and err.strip().startswith("predict received runtime=onnx; ") and "kiln export" in err and "\n" not in err.strip()
    stale = tmp_path / "stale"
    import shutil

    shutil.copytree(exported, stale)
    manifest = stale / "exports" / "onnx" / "export.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "model_sha256": "0" * 64}))  # model.keras changed since
    rc, rows, err = predict(capsys, stale, image)
    assert rc == 0 and "(keras)" in err and len(rows) == 1
