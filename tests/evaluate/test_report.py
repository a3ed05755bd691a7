"""report.html: written by train and by kiln report, self-contained, with every section."""

import json
import re
import shutil
from pathlib import Path

SECTIONS = ['id="summary"', 'id="curves"', 'id="confusion"', 'id="classes"', 'id="curves-roc"', 'id="calibration"',
            'id="confused"', 'id="errors"', 'id="gradcam"']


def _self_contained(text: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "<script src" not in text and "<link" not in text and "@import" not in text
    assert "url(" not in text


def test_train_writes_a_self_contained_report(tiny_run):
    path = tiny_run.path / "report.html"
    text = path.read_text()
    _self_contained(text)
    for section in SECTIONS:
        assert section in text, section
    assert text.count("data:image/png;base64,") >= 6  # curves, confusion, ROC/PR, reliability, Grad-CAM pairs
    assert "Expected calibration error" in text and "Most-confused pairs" in text
    for c in tiny_run.classes:
        assert c in text


def test_kiln_report_with_audit_exports_and_phases(tiny_run, tmp_path, capsys):
    import pandas as pd

    from kiln.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.path, run_dir)
    (run_dir / "report.html").unlink()
    history = pd.read_csv(run_dir / "history.csv")
    history["phase"] = ["head"] * 4 + ["finetune"] * (len(history) - 4)
    history.to_csv(run_dir / "history.csv", index=False)
    (tmp_path / "audit").mkdir()  # `kiln audit DATA out=...` beside the run, about this run's data
    (tmp_path / "audit" / "audit.json").write_text(json.dumps({
        "source": str(Path(tiny_run.config.data.path).resolve()), "files": 120, "duplicates": [["a.png", "b.png"]], "classes": {"class_a": 40, "class_b": 40, "class_c": 40},
        "problems": [{"path": "bad/file.png", "kind": "corrupt", "detail": "truncated PNG"}]}))
    (run_dir / "exports" / "tflite").mkdir(parents=True)
    (run_dir / "exports" / "tflite" / "export.json").write_text(json.dumps({
        "format": "tflite", "quantize": "int8", "agreement": 0.98, "accuracy": 0.97, "keras_accuracy": 0.99,
        "size_bytes": 123456}))
    assert main(["report", str(run_dir), "gallery=4", "gradcam=2"]) == 0
    assert "report.html" in capsys.readouterr().out
    text = (run_dir / "report.html").read_text()
    _self_contained(text)
    for section in SECTIONS + ['id="audit"', 'id="exports"']:
        assert section in text, section
    assert "truncated PNG" in text and "int8" in text and "0.1235 MB" not in text and "0.12 MB" in text
    assert "Phases shaded" in text
    # another split and another destination
    assert main(["report", str(run_dir), "split=val", f"out={tmp_path / 'val.html'}"]) == 0
    assert "Confusion matrix (val)" in (tmp_path / "val.html").read_text()
    assert main(["report", str(run_dir), "split=nope"]) == 2
    assert main(["report", str(tmp_path)]) == 2  # not a run folder: one line, exit 2
