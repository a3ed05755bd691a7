"""The training doctor on runs made sick on purpose (tiny generated tables, seconds each), on a healthy run, on
synthetic histories (a GAN whose discriminator wins), and on folders it must refuse with one line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kiln.tasks.table.synth import make_table

KILN = str(Path(sys.executable).parent / "kiln")
QUIET = ["target=label", "verbose=0", "tensorboard=false", "evaluate.report=false", "importance=false", "baselines=false"]


def _train(root: Path, name: str, frame: pd.DataFrame, *keys: str):
    from kiln.config import load_config
    from kiln.train.trainer import train

    data = root / f"{name}.csv"
    frame.to_csv(data, index=False)
    return train(load_config(None, [f"data={data}", f"run_dir={root / name}", "model=dnn", *QUIET, *keys]))


def _kinds(run_dir, severity=None) -> set[str]:
    from kiln.doctor.findings import doctor

    findings, _ = doctor(run_dir)
    return {f.kind for f in findings if severity is None or f.severity == severity}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("doctor")


def test_lr_far_too_high_diverges_and_is_named(root):
    from kiln.errors import KilnError

    with pytest.raises(KilnError, match="NaN or Inf"):
        _train(root, "high", make_table(300, seed=0), "optimizer=sgd", "lr=10", "epochs=5", "model.batchnorm=false")
    run = root / "high"
    assert (run / "history.csv").is_file() and (run / "diagnostics.csv").is_file() and not (run / "model.keras").exists()
    assert {"diverged", "lr_too_high"} <= _kinds(run, "error")
    from kiln.doctor.findings import doctor

    assert "stopped by a non-finite loss" in doctor(run)[1][0]


def test_shuffled_labels_are_at_chance(root):
    frame = make_table(300, seed=0)
    frame["label"] = np.random.default_rng(0).permutation(frame["label"].to_numpy())
    _train(root, "shuffled", frame, "epochs=8", "lr=3e-3")
    assert "at_chance" in _kinds(root / "shuffled", "error")


def test_tiny_dataset_trained_long_overfits(root):
    _train(root, "long", make_table(160, seed=2), "epochs=60", "patience=0", "lr=3e-3", "model.dropout=0",
           "model.units=[256,256]", "val_split=0.3")
    kinds = _kinds(root / "long")
    assert "overfitting" in kinds and "lr_too_high" not in kinds


def test_deep_sigmoid_net_has_vanishing_gradients(root):
    _train(root, "sigmoid", make_table(300, seed=0), "epochs=2", "model.activation=sigmoid", "model.batchnorm=false",
           "model.units=[32,32,32,32,32,32,32,32,32,32]", "tensorboard=true")
    assert "vanishing_gradients" in _kinds(root / "sigmoid")
    import tensorflow as tf  # the recorder's signals are TensorBoard scalars too

    events = list((root / "sigmoid" / "tensorboard" / "diagnostics").glob("events.out.tfevents.*"))
    tags = {v.tag for e in events for event in tf.compat.v1.train.summary_iterator(str(e)) for v in event.summary.value}
    assert {"doctor/init_loss", "doctor/grad_norm", "doctor/input_wait", "doctor/cpu_util"} <= tags


def test_slow_input_pipeline_is_input_bound(root, monkeypatch):
    import tensorflow as tf

    from kiln.tasks.base import get_task

    task = type(get_task("table"))
    original = task.make_dataset

    def slow(self, rows, spec, cfg, training, **options):
        ds = original(self, rows, spec, cfg, training, **options)
        if not training:
            return ds

        def wait(x, y):
            z = tf.numpy_function(lambda a: (time.sleep(0.03), a)[1], [y], y.dtype)
            return x, tf.ensure_shape(z, y.shape)

        return ds.map(wait)

    monkeypatch.setattr(task, "make_dataset", slow)
    _train(root, "slow", make_table(300, seed=0), "epochs=3", "lr=3e-3")
    assert "input_bound" in _kinds(root / "slow")


def test_healthy_run_has_no_error_and_training_is_unchanged(root):
    """Defaults on a learnable table: no error-severity finding; and the recorder does not change what is learned."""
    frame = make_table(400, seed=1)
    on = _train(root, "healthy", frame, "epochs=6", "model=resnet_plr", "patience=0")
    off = _train(root, "healthy_off", frame, "epochs=6", "model=resnet_plr", "patience=0", "doctor=false")
    assert not _kinds(root / "healthy", "error")
    diag = pd.read_csv(root / "healthy" / "diagnostics.csv")
    assert {"init_loss", "expected_init_loss", "grad_norm", "update_ratio", "dead_share", "input_wait", "examples_per_s",
            "cpu_util", "rss_mb", "stopped"} <= set(diag["signal"])
    assert not (root / "healthy_off" / "diagnostics.csv").exists()
    history = pd.read_csv(root / "healthy" / "history.csv")
    assert list(history.columns) == list(pd.read_csv(root / "healthy_off" / "history.csv").columns)
    for a, b in zip(on.model.get_weights(), off.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_probes_name_sick_runs_and_pass_a_healthy_one(root):
    """probe=true on runs trained above: shuffled labels, a learnable table, and lr=10 (diverged, no model.keras)."""
    from kiln.doctor.findings import doctor
    from kiln.doctor.probes import probe

    def probed(name):
        found = probe(root / name)
        assert len(found) == 4 and not any("not run" in f.evidence for f in found), found
        return {f.kind: f.severity for f in found}

    assert probed("shuffled")["inputs_ignored"] == "error"
    healthy = probed("healthy")
    assert set(healthy) == {"overfit_one_batch", "zero_input_baseline", "lr_sweep", "input_pipeline"}, healthy
    high = probed("high")
    assert high.get("lr_too_high") == "warning" and "cannot_overfit" in high
    findings, notes = doctor(root / "shuffled")  # kiln doctor lists what the probes found
    assert any(f.kind == "inputs_ignored" for f in findings) and any("probe results" in n for n in notes)


def _run_dir(path: Path, history: dict, diagnostics: str | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text("train:\n  lr: 0.001\n")
    pd.DataFrame({"epoch": range(len(next(iter(history.values())))), **history}).to_csv(path / "history.csv", index=False)
    if diagnostics is not None:
        (path / "diagnostics.csv").write_text(diagnostics)
    return path


def test_gan_whose_discriminator_wins(tmp_path):
    d = np.r_[0.69, 0.4, 0.1, 0.03, 0.01, 0.005, 0.004, 0.003, 0.002, 0.002]
    g = np.r_[0.7, 1.5, 3.0, 4.5, 6.0, 7.0, 7.5, 8.0, 8.2, 8.5]
    sick = _run_dir(tmp_path / "gan", {"d_loss": d, "g_loss": g})
    balanced = _run_dir(tmp_path / "gan_ok", {"d_loss": np.full(10, 0.65), "g_loss": np.full(10, 0.8)})
    assert "discriminator_wins" in _kinds(sick, "error")
    assert "discriminator_wins" not in _kinds(balanced)


def test_run_from_before_the_recorder_is_history_only(tmp_path):
    run = _run_dir(tmp_path / "old", {"loss": [0.6, 0.4, 0.3], "val_loss": [0.6, 0.45, 0.4]})
    from kiln.doctor.findings import doctor

    findings, notes = doctor(run)
    assert any("history only" in n for n in notes) and not findings


def _cli(*args):
    return subprocess.run([KILN, "doctor", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_json_and_bad_input(tmp_path, root):
    out = _cli(root / "shuffled", "format=json")
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert {"kind", "severity", "evidence", "fix"} <= set(found[0]) and "at_chance" in {f["kind"] for f in found}

    (tmp_path / "empty").mkdir()
    no_history = tmp_path / "fresh"
    no_history.mkdir()
    (no_history / "config.yaml").write_text("seed: 1\n")
    damaged = _run_dir(tmp_path / "damaged", {"loss": [0.5, 0.4]}, "epoch,step,signal,layer,value\n0,0,loss,,abc\n")
    for folder, why, *more in ((tmp_path / "empty", "not a Kiln run folder"), (no_history, "no history yet"),
                               (damaged, "diagnostics.csv"), (root / "shuffled", "probe=maybe", "probe=maybe")):
        out = _cli(folder, *more)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and why in lines[0] and "Traceback" not in out.stderr
