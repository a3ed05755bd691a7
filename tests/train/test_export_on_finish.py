"""`train.export_on_finish`: when `kiln train` writes the run's ONNX export itself (written: tests/spine/test_demo.py,
whose demos ask for it; here the decisions that write nothing)."""

from __future__ import annotations

from kiln.train.trainer import EXPORT_MIN_TRAIN_SECONDS, export_on_finish


def test_auto_skips_a_short_run_and_says_why(tiny_run, capsys):
    assert export_on_finish(tiny_run, "auto", ("keras", "onnx"), EXPORT_MIN_TRAIN_SECONDS - 1) is None
    line = capsys.readouterr().out.strip()
    assert line.startswith("kiln: export_on_finish=auto: no export (trained in") and "kiln export" in line
    assert not (tiny_run.path / "exports").exists()


def test_none_or_a_task_without_onnx_writes_nothing(tiny_run, capsys):
    assert export_on_finish(tiny_run, "none", ("keras", "onnx"), 1000) is None
    assert export_on_finish(tiny_run, "onnx", ("keras", "savedmodel"), 1000) is None
    assert capsys.readouterr().out == "" and not (tiny_run.path / "exports").exists()


def test_the_default_is_auto():
    from kiln.config import load_config

    assert load_config().train.export_on_finish == "auto"
    assert load_config(overrides={"export_on_finish": "onnx"}).train.export_on_finish == "onnx"
