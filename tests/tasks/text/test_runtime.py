"""`kiln predict` on a text run through its verified ONNX export: the shipped tokenizer (plain Python) and
onnxruntime answer as the Keras model does, without TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_checks import exported_copy, predict, predict_without_tensorflow

TEXTS = ["a wonderful , delightful film", "dull and boring plot", "it was fine I guess"]


@pytest.fixture(scope="module")
def exported(text_run, tmp_path_factory):
    return exported_copy(text_run.path, tmp_path_factory.mktemp("textrt") / "run")


def test_auto_uses_the_export_and_answers_as_keras(exported, capsys):
    rc, onnx_rows, err = predict(capsys, exported, *TEXTS)
    assert rc == 0 and "(onnxruntime, exports/onnx)" in err
    rc, keras_rows, err = predict(capsys, exported, *TEXTS, "runtime=keras")
    assert rc == 0 and "(keras)" in err
    assert [r["label"] for r in onnx_rows] == [r["label"] for r in keras_rows] and len(onnx_rows) == len(TEXTS)
    np.testing.assert_allclose([r["score"] for r in onnx_rows], [r["score"] for r in keras_rows], atol=1e-5)


def test_onnx_predict_never_imports_tensorflow(exported, text_run):
    done = predict_without_tensorflow(exported, "a wonderful film")
    assert any(c in done.stdout for c in text_run.classes)
