"""`kiln predict runtime=auto|keras|onnx` on a table run: the run's verified ONNX export predicts without
importing TensorFlow, gives Keras' answers, and is used only while it belongs to the current model.keras."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from kiln.cli import main


@pytest.fixture(scope="module")
def exported_run(table_run, tmp_path_factory):
    """A copy of the classification run (the shared fixture stays without exports) with exports/onnx."""
    run = tmp_path_factory.mktemp("rt") / "cls"
    shutil.copytree(table_run.path, run)
    assert main(["export", str(run), "format=onnx"]) in (0, None)
    return run


@pytest.fixture(scope="module")
def rows_csv(table_csv, tmp_path_factory):
    rows = pd.read_csv(table_csv, dtype=str, keep_default_na=False).iloc[:200]
    rows.loc[0, "city"], rows.loc[1, "age"], rows.loc[2, "joined"] = "Atlantis", "", "?"  # unseen, empty, missing spelling
    path = tmp_path_factory.mktemp("rtrows") / "rows.csv"
    rows.to_csv(path, index=False)
    return path


def _predict(capsys, *args):
    capsys.readouterr()
    rc = main(["predict", *map(str, args)])
    return rc or 0, capsys.readouterr()


def test_export_records_the_model_it_was_made_from(exported_run):
    from kiln.io import sha256_file

    info = json.loads((exported_run / "exports" / "onnx" / "export.json").read_text())
    assert info["passed"] and info["model_sha256"] == sha256_file(exported_run / "model.keras")


def test_auto_uses_the_onnx_export_and_agrees_with_keras(exported_run, rows_csv, tmp_path, capsys):
    rc, out = _predict(capsys, exported_run, rows_csv, f"out={tmp_path / 'onnx.csv'}")
    assert rc == 0 and "(onnxruntime, exports/onnx)" in out.out
    rc, out = _predict(capsys, exported_run, rows_csv, f"out={tmp_path / 'keras.csv'}", "runtime=keras")
    assert rc == 0 and "(keras)" in out.out
    a, b = (pd.read_csv(tmp_path / f, keep_default_na=False) for f in ("onnx.csv", "keras.csv"))
    assert len(a) == 200 and list(a.columns) == list(b.columns)
    np.testing.assert_allclose(a["proba_c1"], b["proba_c1"], atol=1e-4)
    assert (a["prediction"] == b["prediction"]).mean() >= 0.99


def test_onnx_predict_never_imports_tensorflow(exported_run, rows_csv, tmp_path):
    code = ("import sys; from kiln.cli import main; rc = main(sys.argv[1:]); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'; sys.exit(rc or 0)")
    r = subprocess.run([sys.executable, "-c", code, "predict", str(exported_run), str(rows_csv), f"out={tmp_path / 'p.csv'}",
                        "runtime=onnx"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "p.csv")) == 200


def test_a_stale_export_falls_back_to_keras(exported_run, rows_csv, tmp_path, capsys):
    stale = tmp_path / "stale"
    shutil.copytree(exported_run, stale)
    manifest = stale / "exports" / "onnx" / "export.json"
    info = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**info, "model_sha256": "0" * 64}))  # as if model.keras had changed since
    rc, out = _predict(capsys, stale, rows_csv, f"out={tmp_path / 'p.csv'}")
    assert rc == 0 and "(keras)" in out.out
    rc, out = _predict(capsys, stale, rows_csv, f"out={tmp_path / 'q.csv'}", "runtime=onnx")
    assert rc == 2 and not (tmp_path / "q.csv").exists()
    line = out.err.strip()
    assert line.startswith("predict received runtime=onnx; ") and "kiln export" in line and "\n" not in line


def test_bad_runtime_is_one_line(table_run, tiny_run, rows_csv, tmp_path, capsys):
    rc, out = _predict(capsys, table_run.path, rows_csv, "runtime=tensorrt")
    assert rc == 2 and out.err.strip() == ("predict received runtime=tensorrt; table runs predict with runtime auto, keras, onnx. "
                                           "Leave runtime out, or serve the run's export with kiln serve.")
    rc, out = _predict(capsys, tiny_run.path, rows_csv, "runtime=tflite")
    assert rc == 2 and "image runs predict with runtime auto, keras, onnx." in out.err
