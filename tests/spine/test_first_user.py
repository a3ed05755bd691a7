"""What a first user trips on (issue 32), on the spine: file modes, top-k, the threshold default, Ctrl+C and the
same command again, a text path that does not exist, forecasting runs in `kiln runs`, the project's licence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kiln.errors import DataError

REPO = Path(__file__).resolve().parents[2]
KILN = str(Path(sys.executable).parent / "kiln")


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_honour_the_umask(tmp_path, mask, mode):
    from kiln.io import write_json, write_text

    old = os.umask(mask)
    try:
        write_text(tmp_path / "report.html", "<p>x</p>")
        write_json(tmp_path / "metrics.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == mode
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == mode


def test_top_k_only_below_the_class_count():
    from kiln.evaluate.metrics import classification_metrics

    rng = np.random.default_rng(0)
    three = classification_metrics(rng.integers(0, 3, 50), rng.dirichlet(np.ones(3), 50), list("abc"), top_k=5)
    assert three["top_k"] == 2  # top-3 of 3 classes would always be 1.0
    two = classification_metrics(rng.integers(0, 2, 50), rng.dirichlet(np.ones(2), 50), list("ab"), top_k=5)
    assert "top_k_accuracy" not in two and two["threshold"] == 0.5 and two["accuracy_at_0.5"] == two["accuracy"]


def test_threshold_auto_is_argmax_unless_a_class_is_rare():
    from kiln.evaluate.threshold import choose_threshold, resolve_rule

    assert resolve_rule("auto", np.r_[np.zeros(68), np.ones(32)])[0] == "argmax"
    assert resolve_rule("auto", np.r_[np.zeros(90), np.ones(10)])[0] == "max_f1"
    assert resolve_rule("youden", [0, 1]) == ("youden", None)
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(90), np.ones(10)].astype(int)
    p = np.clip(0.15 + 0.3 * y + rng.normal(0, 0.1, 100), 0, 1)
    value, details = choose_threshold(y, np.c_[1 - p, p], "auto")
    assert value < 0.5 and "max_f1" in details["auto"]


def test_text_predict_of_a_missing_path_is_refused(tmp_path):
    from kiln.tasks.text.evaluate import read_inputs

    spec = SimpleNamespace(text_column="text", max_chars=1000)
    for bad in ("../data/nonexistent.txt", str(tmp_path / "nope"), "reviews.csv"):
        with pytest.raises(DataError, match="no such file or folder"):
            read_inputs([bad], spec)
    assert read_inputs(["great", "a/b is fine in a sentence"], spec) == [("<text>", "great"), ("<text>", "a/b is fine in a sentence")]


def test_series_runs_show_forecast_figures(tmp_path):
    from kiln.runs import list_runs, run_summary

    run = tmp_path / "runs" / "sst"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"task": "series", "model": "linear", "series": {"lookback": 24, "horizon": 12}}))
    (run / "metrics.json").write_text(json.dumps({"val": {"mase": 0.8, "mae": 0.3, "smape": 4.0, "windows": 10},
                                                   "test": {"mase": 0.9, "mae": 0.35, "smape": 4.5, "windows": 10}}))
    (run / "config.yaml").write_text("train:\n  lr: 0.01\n")
    row = run_summary(run)
    assert row["metrics"] == "MASE/MAE/sMAPE %" and row["test"] == "0.9000/0.3500/4.5000" and row["val"].startswith("0.8000")
    assert "MASE/MAE/sMAPE %" in list_runs(tmp_path / "runs")


def test_license_is_an_spdx_string():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"


def _wait_for(path: Path, proc, seconds: float = 120) -> None:
    end = time.time() + seconds
    while time.time() < end and not path.is_file() and proc.poll() is None:
        time.sleep(0.2)


def test_ctrl_c_says_how_to_continue_and_the_same_command_continues(tmp_path):
    """SIGINT after the first checkpoint: the exact command to continue; the same command with name= continues
    runs/plr instead of starting runs/plr-2 at epoch 1."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": np.where(x[:, 0] > 0, "yes", "no")}).to_csv(tmp_path / "t.csv", index=False)
    args = ["train", "data=t.csv", "target=label", "name=plr", "model=linear", "patience=0", "verbose=0", "tensorboard=false",
            "baselines=false", "importance=false", "evaluate.report=false"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([KILN, *args, "epochs=3000"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(tmp_path / "runs" / "plr" / "state" / "checkpoint.npz", proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Continue it with: kiln train data=t.csv target=label name=plr" in err and "run_dir=runs/plr" in err
    done = len(pd.read_csv(tmp_path / "runs" / "plr" / "history.csv"))
    again = subprocess.run([KILN, *args, f"epochs={done + 2}"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "unfinished run named plr; continuing it" in again.stdout and "resuming runs/plr after epoch" in again.stdout
    assert (tmp_path / "runs" / "plr" / "model.keras").is_file() and not (tmp_path / "runs" / "plr-2").exists()
