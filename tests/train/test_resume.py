"""Resume after a crash: a real `kiln train` process is SIGKILLed mid-run (in phase 1, then in phase 2)
and started again with the same command; the history must have every epoch exactly once."""

import math
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import KILN
from kiln.config import load_config
from kiln.errors import KilnError
from kiln.train.resume import RunFolder, read_state, state_path, truncate_history

STEPS = 3  # 96 training images / batch 32


def _start(args, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([KILN, "train", *args], stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _kill_when(proc: subprocess.Popen, run_dir: Path, ready, delay: float = 0.0, timeout: float = 90.0):
    """SIGKILL `proc` `delay` seconds after `ready(state)` holds for its checkpoint; returns the last checkpoint."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended (rc={proc.returncode}) before it could be killed")
        state = read_state(run_dir) if state_path(run_dir).is_file() else None
        if state is not None and ready(state):
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return read_state(run_dir)  # the last checkpoint committed before the kill
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("no checkpoint in time")


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 120.0):
    try:
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert rc == 0, log.read_text()[-3000:]


def _cosine(peak: float, total_steps: int, step: int) -> float:
    return peak * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


def test_sigkill_in_both_phases_then_same_command_resumes(tmp_path, shapes_dir, tiny_run, capsys):
    run_dir = tmp_path / "run"
    log = tmp_path / "train.log"
    e1, e2 = 8, 4  # enough epochs that a kill lands inside the phase even when epochs take a fraction of a second
    args = [f"data={shapes_dir}", f"run_dir={run_dir}", f"weights={tiny_run.path}", "image_size=32", "seed=3",
            f"epochs={e1}", f"finetune_epochs={e2}", "unfreeze=0.5", "lr=0.003", "finetune_lr=0.0005",
            "patience=30", "finetune_patience=30", "tensorboard=false", "verbose=0", "evaluate.report=false"]

    # 1) killed in phase 1 at a random moment after its first checkpoint
    after = random.Random(os.getpid()).uniform(0.0, 0.1)
    s1 = _kill_when(_start(args, log), run_dir, lambda s: s.phase == 1 and s.epoch >= 1, delay=after)
    assert s1.phase == 1 and 1 <= s1.epoch < e1
    assert not (run_dir / "model.keras").exists()
    # 2) the same command resumes; killed again in the middle of phase 2
    s2 = _kill_when(_start(args, log), run_dir, lambda s: s.phase == 2 and s.epoch >= e1 + 1)
    assert s2.epoch > s1.epoch and s2.phase_start == e1 and s2.optimizer
    # 3) the same command with finetune_epochs raised by one finishes the run
    _finish(_start([a for a in args if not a.startswith("finetune_epochs=")] + [f"finetune_epochs={e2 + 1}"], log), log)
    text = log.read_text()
    assert text.count("kiln: resuming") == 2, text[-3000:]

    h = pd.read_csv(run_dir / "history.csv")
    n = e1 + e2 + 1
    assert h["epoch"].tolist() == list(range(n))  # no epoch lost, none repeated
    assert h["phase"].tolist() == [1] * e1 + [2] * (n - e1)
    # The per-step LR schedule continued from the restored optimizer.iterations in both phases.
    expected = [_cosine(0.003, STEPS * e1, STEPS * (e + 1)) for e in range(e1)]
    # phase 2 epochs before the second kill ran with finetune_epochs=e2, the rest with e2 + 1
    expected += [_cosine(0.0005, STEPS * (e2 if e1 + e < s2.epoch else n - e1), STEPS * (e + 1)) for e in range(n - e1)]
    np.testing.assert_allclose(h["lr"].to_numpy(), expected, rtol=1e-3, atol=1e-7)
    assert (run_dir / "model.keras").is_file() and (run_dir / "metrics.json").is_file()
    assert not (run_dir / "state").exists()
    assert load_config(run_dir / "config.yaml").train.finetune_epochs == e2 + 1
    assert read_state(run_dir) is None
    # a finished run is never overwritten
    from kiln.cli import main  # in this process: one TensorFlow import fewer

    assert main(["train", *args]) == 2 and "already holds a finished run" in capsys.readouterr().err


def _unfinished(tmp_path) -> Path:
    run_dir = tmp_path / "unfinished"
    state_path(run_dir).parent.mkdir(parents=True)
    np.savez(state_path(run_dir), meta=np.array('{"phase": 1, "epoch": 2, "phase_start": 0}'))
    return run_dir


def test_resume_modes_and_lock(tmp_path):
    run_dir = _unfinished(tmp_path)
    with pytest.raises(KilnError, match="unfinished run and resume=false"):
        RunFolder(load_config(overrides={"run_dir": str(run_dir), "resume": False}))
    with pytest.raises(KilnError, match="holds no unfinished run"):
        RunFolder(load_config(overrides={"run_dir": str(tmp_path / "fresh"), "resume": True}))
    with pytest.raises(KilnError, match="no unfinished run"):
        RunFolder(load_config(overrides={"runs_root": str(tmp_path / "none"), "resume": True}))
    # resume=true without run_dir finds the latest unfinished runs_root/name[-N]
    found = RunFolder(load_config(overrides={"runs_root": str(tmp_path), "name": "unfinished", "resume": True}))
    first = RunFolder(load_config(overrides={"run_dir": str(run_dir)}))
    assert first.create() == run_dir and first.resuming and first.state.epoch == 2
    try:
        with pytest.raises(KilnError, match="another kiln process is training"):
            found.create()
    finally:
        first.close()


def test_truncate_history_drops_rows_past_the_checkpoint(tmp_path):
    f = tmp_path / "history.csv"
    f.write_text("epoch,loss\r\n0,1.0\r\n1,0.9\r\n2,0.8\r\n3,0.")  # row 3 half written when killed
    truncate_history(f, 2)
    assert f.read_bytes() == b"epoch,loss\r\n0,1.0\r\n1,0.9\r\n"
    truncate_history(f, 0)
    assert not f.exists()
