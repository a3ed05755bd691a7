"""The table task on the spine: resume after a crash through kiln/train, the task's batch size, and the
task-blind CLI modes (models lists every task's models; convert says tables have no shard format)."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from kiln.cli import main


def _cli(capsys, *args):
    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc or 0, out.out, out.err)


def test_crashed_table_run_resumes_where_it_stopped(tmp_path, table_csv, monkeypatch, capsys):
    """A crash after epoch 3 of 6 leaves a checkpoint; the same command continues from it and every epoch is in
    history.csv exactly once; run.json holds the resolved model and the task's batch size."""
    from kiln.config import load_config
    from kiln.train import callbacks
    from kiln.train.resume import read_state
    from kiln.train.trainer import train

    args = [f"data={table_csv}", "target=label", f"run_dir={tmp_path / 'run'}", "epochs=6", "patience=0", "verbose=0",
            "tensorboard=false", "model=linear", "lr=1e-2", "baselines=false", "importance=false", "evaluate.report=false"]
    original = callbacks.ResumeState.on_epoch_end

    def crash_after_third(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 2:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(callbacks.ResumeState, "on_epoch_end", crash_after_third)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(load_config(None, args))
    # the checkpoint is written in the background: a crash may leave it one epoch behind (the resume cuts history back)
    assert read_state(tmp_path / "run").epoch in (2, 3) and not (tmp_path / "run" / "model.keras").exists()
    monkeypatch.setattr(callbacks.ResumeState, "on_epoch_end", original)
    capsys.readouterr()
    run = train(load_config(None, args))
    assert "resuming" in capsys.readouterr().out
    assert run.history["epoch"].tolist() == [0, 1, 2, 3, 4, 5]
    assert run.meta["model"] == "linear" and run.meta["global_batch"] == 32  # 479 train rows / 100 -> at least 32
    assert run.metrics["test"]["accuracy"] > 0.6


def test_batch_rows_rule_and_auto_model():
    from types import SimpleNamespace

    from kiln.tasks.base import get_task
    from kiln.tasks.table.auto import batch_rows

    cfg = SimpleNamespace(table=SimpleNamespace(batch_rows="auto"))
    assert [batch_rows(cfg, n) for n in (100, 8_000, 80_000, 1_000_000)] == [32, 160, 1600, 2048]
    assert batch_rows(SimpleNamespace(table=SimpleNamespace(batch_rows=64)), 80_000) == 64
    task = get_task("table")
    rows = pd.DataFrame({"split": ["train"] * 5000 + ["val"] * 100})
    data = SimpleNamespace(rows=rows)
    assert task.batch_size(SimpleNamespace(table=SimpleNamespace(batch_rows="auto")), data) == 100


def test_cli_models_and_convert_go_through_the_registry(tmp_path, table_csv, capsys):
    r = _cli(capsys, "models")
    lines = r.stdout.splitlines()
    table_models = {line.split()[0] for line in lines if line.split()[1] == "table"}
    assert table_models == {"dnn", "linear", "resnet_plr", "tabm"} and any(line.split()[1] == "image" for line in lines)
    assert _cli(capsys, "models", "resnet_p*").stdout.split()[0] == "resnet_plr"
    r = _cli(capsys, "convert", str(table_csv), "target=label", f"out={tmp_path / 'shards'}")
    assert r.returncode == 2 and "the table task does not support convert" in r.stderr and not (tmp_path / "shards").exists()
