"""Every user mistake and every damaged file Kiln reads back: exit 2, one stderr line, no traceback.

The CLI runs as a subprocess over a table of mistakes (a misspelt mode or option, a missing value)
and of damaged copies of one trained run (unsafe, cut short, not what the name says, from a newer
Kiln), one per file kind Kiln reads back, across the modes that read them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import KILN

NEWER = 99  # a format_version no Kiln reads yet


def _cut(path: Path, keep: float = 0.5) -> None:
    """Cut a file short, as a copy interrupted halfway would."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])


def _newer(path: Path) -> None:
    obj = json.loads(path.read_text())
    obj["format_version"] = NEWER
    path.write_text(json.dumps(obj))


def _lambda_model(path: Path) -> None:
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)).save(path)


@pytest.fixture(scope="module")
def damaged(tiny_run, tmp_path_factory) -> dict[str, Path]:
    """Damaged copies of the shared tiny run (never written into), built once for the whole table."""
    root = tmp_path_factory.mktemp("damaged")
    folders: dict[str, Path] = {}

    def copy(name: str) -> Path:
        dest = root / name
        shutil.copytree(tiny_run.path, dest, ignore=shutil.ignore_patterns("tensorboard", "plots", "report.html"))
        folders[name] = dest
        return dest

    _lambda_model(copy("lambda") / "model.keras")
    _cut(copy("model_cut") / "model.keras")
    (copy("model_text") / "model.keras").write_text("not a model\n")
    _cut(copy("meta_cut") / "run.json")
    _newer(copy("meta_newer") / "run.json")
    (copy("config_bad") / "config.yaml").write_text("data:\n  path: [unclosed\n")
    _cut(copy("splits_cut") / "splits.csv", 0.7)
    (copy("splits_foreign") / "splits.csv").write_text("name,score\na.png,0.5\n")
    _cut(copy("best_cut") / "checkpoints" / "best.keras")

    unfinished = copy("state_cut")  # a run killed mid-training whose checkpoint was then cut short
    (unfinished / "model.keras").unlink()
    (unfinished / "state").mkdir()
    np.savez(unfinished / "state" / "checkpoint.npz", meta=np.array(json.dumps({"phase": 1, "epoch": 3, "phase_start": 0})),
             **{"w/0": np.zeros((64, 64), np.float32)})
    _cut(unfinished / "state" / "checkpoint.npz")

    for name, damage in (("metrics_cut", "metrics.json"), ("history_cut", "history.csv")):
        runs_root = root / f"runs_{name}"
        runs_root.mkdir()
        shutil.copytree(tiny_run.path, runs_root / "train", ignore=shutil.ignore_patterns("tensorboard", "plots"))
        _cut(runs_root / "train" / damage, 0.6)
        folders[name] = runs_root

    manifest = {"format_version": 1, "format": "keras", "quantize": "none", "file": "model.keras", "labels": "labels.txt",
                "classes": tiny_run.classes, "image": tiny_run.meta["image"]}
    for name in ("export_cut", "export_newer"):
        folder = root / name
        folder.mkdir()
        (folder / "export.json").write_text(json.dumps(manifest, indent=2))
        folders[name] = folder
    _cut(folders["export_cut"] / "export.json")
    _newer(folders["export_newer"] / "export.json")

    quarantine = root / "data.quarantine"
    quarantine.mkdir()
    (quarantine / "manifest.json").write_text(json.dumps({"format_version": 1, "source": "data", "files": [
        {"from": "data/a/1.png", "to": str(quarantine / "a" / "1.png"), "kinds": ["corrupt"]}]}))
    _cut(quarantine / "manifest.json")
    folders["quarantine_cut"] = quarantine / "manifest.json"

    shards = root / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text(json.dumps({"format": "kiln-tfrecord", "format_version": NEWER, "shards": []}))
    (shards / "train-00000.tfrecord").write_bytes(b"")
    folders["shards_newer"] = shards
    folders["data"] = Path(tiny_run.config.data.path)
    folders["image"] = next(Path(tiny_run.config.data.path).rglob("*.png"))
    return folders


# (id, argv with {name} for a damaged folder, what the one line must say)
CASES = [
    ("unknown mode", ["trian", "data=images"], ["kiln received mode=trian; no such mode. Did you mean train?"]),
    ("misspelt option", ["train", "--confg", "my.yaml"], ["train received option=--confg", "Did you mean --config?"]),
    ("option without value", ["train", "--config"], ["train received option=--config", "needs a value"]),
    ("option a mode lacks", ["evaluate", "{lambda}", "--split", "val"], ["evaluate received option=--split", "key=value"]),
    ("model.keras with a Lambda", ["evaluate", "{lambda}"], ["evaluate received file=", "model.keras", "Lambda layer", "safe mode"]),
    ("model.keras cut short", ["evaluate", "{model_cut}"], ["received file=", "model.keras", "cut short"]),
    ("model.keras not a zip", ["predict", "{model_text}", "{image}"], ["received file=", "model.keras", "not a .keras model"]),
    ("run.json cut short", ["evaluate", "{meta_cut}"], ["received file=", "run.json", "cut short"]),
    ("run.json from a newer Kiln", ["report", "{meta_newer}"], ["report received file=", "run.json", "newer Kiln", "Upgrade Kiln"]),
    ("config.yaml not YAML", ["evaluate", "{config_bad}", "data={data}"], ["received file=", "config.yaml", "not valid YAML"]),
    ("splits.csv cut short", ["evaluate", "{splits_cut}"], ["received file=", "splits.csv", "cut short"]),
    ("splits.csv not a splits table", ["export", "{splits_foreign}", "format=keras"],
     ["export received file=", "splits.csv", "not a Kiln splits.csv"]),
    ("best.keras cut short", ["inspect", "{best_cut}/checkpoints/best.keras"], ["received file=", "best.keras", "cut short"]),
    ("resume checkpoint cut short", ["train", "data={data}", "run_dir={state_cut}", "epochs=12", "seed=1", "image_size=32",
                                     "model.filters=16,32", "model.units=32,", "tensorboard=false"],
     ["train received file=", "checkpoint.npz", "cut short or damaged"]),
    ("metrics.json cut short", ["runs", "{metrics_cut}"], ["runs received file=", "metrics.json", "cut short"]),
    ("history.csv cut short", ["runs", "{history_cut}"], ["runs received file=", "history.csv", "cut short"]),
    ("serve a model cut short", ["serve", "{model_cut}", "port=0"], ["serve received file=", "model.keras", "cut short"]),
    ("export.json cut short", ["serve", "{export_cut}", "port=0"], ["received file=", "export.json", "cut short"]),
    ("export.json from a newer Kiln", ["serve", "{export_newer}", "port=0"], ["received file=", "export.json", "newer Kiln"]),
    ("quarantine manifest cut short", ["audit", "restore", "{quarantine_cut}"], ["received file=", "manifest.json", "cut short"]),
    ("shard manifest from a newer Kiln", ["convert", "verify", "{shards_newer}"], ["received file=", "manifest.json", "newer Kiln"]),
]


@pytest.mark.parametrize("argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_clean_line_and_exit_2(damaged, argv, expected):
    args = [a.format(**damaged) for a in argv]
    proc = subprocess.run([KILN, *args], capture_output=True, text=True, timeout=180)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    for part in expected:
        assert part in lines[0], lines[0]
    assert "no such file" not in lines[0] and "not found" not in lines[0].lower()  # damaged is never "missing"


def test_version_names_kiln_tensorflow_and_keras():
    import keras
    import tensorflow as tf

    import kiln

    proc = subprocess.run([KILN, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    out = proc.stdout.strip()
    assert out.startswith(f"kiln {kiln.__version__} ") and f"TensorFlow {tf.__version__}" in out and f"Keras {keras.__version__}" in out
