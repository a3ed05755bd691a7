"""Config: defaults file, overrides, one-line errors with exit code 2."""

import subprocess
import sys

import pytest

from conftest import KILN, REPO
from kiln.config import load_config
from kiln.config.schema import render_default_yaml
from kiln.errors import ConfigError


def test_default_yaml_is_rendered_from_schema():
    assert (REPO / "kiln" / "config" / "default.yaml").read_text() == render_default_yaml()


def test_default_yaml_loads_to_defaults():
    cfg = load_config(REPO / "kiln" / "config" / "default.yaml")
    assert cfg == load_config()


def test_overrides_dotted_and_shortcuts():
    cfg = load_config(overrides=["train.epochs=7", "lr=0.01", "data=some/dir", "model=dnn", "filters=8,16", "image_size=[24,40]"])
    assert cfg.train.epochs == 7
    assert cfg.train.lr == 0.01
    assert cfg.data.path == "some/dir"
    assert cfg.model.name == "dnn"
    assert cfg.image.filters == [8, 16]
    assert cfg.image.image_size == [24, 40]


def test_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 3\n  optimizer: sgd\ndata:\n  batch_size: 8\n")
    cfg = load_config(f, ["epochs=5"])
    assert (cfg.train.epochs, cfg.train.optimizer, cfg.data.batch_size) == (5, "sgd", 8)


@pytest.mark.parametrize("arg, expected", [
    ("epochz=3", "config received unknown key epochz; it is not a config key. Did you mean epochs"),
    ("train.epochs=-1", "config received train.epochs=-1; Input should be greater than or equal to 1. Example: train.epochs="),
    ("optimizer=adamax", "config received train.optimizer=adamax; Input should be 'sgd', 'adam'"),
    ("batch_size=lots", "config received data.batch_size=lots; Input should be a valid integer"),
    ("val_split=0.5", "config received data.val_split=0.5; val_split + test_split must stay below 0.9"),
    ("reduce_lr_patience=3", "config received train.reduce_lr_patience=3; reduce_lr_patience needs schedule=constant"),
])
def test_bad_values_one_line(arg, expected):
    overrides = [arg, "test_split=0.45"] if arg.startswith("val_split") else [arg]
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_cli_exit_code_2_no_traceback(tmp_path):
    out = subprocess.run([KILN, "train", "data=" + str(tmp_path), "epochz=3"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "config received unknown key epochz" in out.stderr
    out = subprocess.run([KILN, "config", "--config", str(tmp_path / "missing.yaml")], capture_output=True, text=True)
    assert out.returncode == 2 and "config received --config=" in out.stderr and "Traceback" not in out.stderr
