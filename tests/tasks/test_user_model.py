"""`model=FILE.py:build` for every registered task: the task's front and end around your body, run.json's
model_file with its sha256, loading only while the file is unchanged, and every bad file as one line (exit 2)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import KILN
from kiln.errors import ConfigError, KilnError
from kiln.tasks.base import TASKS, Task, _load

_load()

MODELS = textwrap.dedent('''
    import keras
    from keras import layers


    def sequential(spec):  # Sequential: one input, a stack of layers
        head = [layers.Embedding(spec.extra["vocabulary_size"], 8), layers.GlobalAveragePooling1D()] \\
            if spec.input_dtype == "int64" else [layers.Flatten()]
        return keras.Sequential([keras.Input(spec.input_shape, dtype=spec.input_dtype), *head,
                                 layers.Dense(spec.outputs, activation=spec.activation)])


    def functional(spec):  # Functional: inputs -> outputs through called layers
        inputs = keras.Input(spec.input_shape)
        x = layers.Conv2D(4, 3, activation="relu")(inputs)
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, layers.Dense(spec.outputs, activation=spec.activation)(x))


    @keras.saving.register_keras_serializable(package="tests")
    class Small(keras.Model):  # subclassing: registered, with get_config, so it saves and loads
        def __init__(self, units, activation, **kwargs):
            super().__init__(**kwargs)
            self.units, self.activation = units, activation
            self.flat = layers.Flatten()
            self.dense = layers.Dense(units, activation=activation)

        def call(self, x):
            return self.dense(self.flat(x))

        def get_config(self):
            return {**super().get_config(), "units": self.units, "activation": self.activation}


    def subclassed(spec):
        return Small(spec.outputs, spec.activation)


    def lambda_layer(spec):
        return keras.Sequential([keras.Input(spec.input_shape), layers.Lambda(lambda x: x * 2), layers.Flatten(),
                                 layers.Dense(spec.outputs, activation=spec.activation)])


    def raises(spec):
        raise RuntimeError("no GPU here")


    def not_a_model(spec):
        return "a model"


    def wrong_outputs(spec):
        return keras.Sequential([keras.Input(spec.input_shape), layers.Flatten(), layers.Dense(spec.outputs + 1, activation="softmax")])


    def no_softmax(spec):
        return keras.Sequential([keras.Input(spec.input_shape), layers.Flatten(), layers.Dense(spec.outputs)])
''')


@pytest.fixture(scope="module")
def models_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("user") / "nets.py"
    path.write_text(MODELS)
    return path


def _train(task, root: Path, model: str, **extra):
    import kiln

    example = task.example(root, seed=0)
    overrides = {**example.overrides, "model": model, **extra}
    return kiln.train(**overrides, task=task.info.name, run_dir=str(root / "run"), seed=0,
                      train={"verbose": 0, "tensorboard": False}, evaluate={"report": False}), example


CUSTOM = sorted(n for n, t in TASKS.items() if type(t).custom_model is not Task.custom_model)  # tasks that take model=FILE.py:build


def test_the_tasks_that_take_your_model():
    assert {"image", "table", "text", "series"} <= set(CUSTOM)


@pytest.mark.parametrize("name", CUSTOM)
def test_a_sequential_body_trains_predicts_and_records_its_file(name, models_file, tmp_path):
    from kiln.run import Run

    task = TASKS[name]
    run, example = _train(task, tmp_path, f"{models_file}:sequential")
    meta = json.loads((run.path / "run.json").read_text())
    assert meta["model_file"]["path"] == str(models_file) and meta["model_file"]["function"] == "sequential"
    assert len(meta["model_file"]["sha256"]) == 64
    assert json.loads((run.path / "metrics.json").read_text())
    fresh = Run(run.path)  # loads model.keras again, through the file check
    assert len(fresh.predict(example.predict_inputs)) == len(example.predict_inputs)


def test_subclassed_body_saves_loads_exports_and_refuses_a_changed_file(models_file, tmp_path):
    import kiln

    task = TASKS["image"]
    run, example = _train(task, tmp_path, f"{models_file}:subclassed")
    m = kiln.export_run(run.path, "keras", out=str(tmp_path / "exports" / "keras"), timing={"latency_runs": 2, "batch_runs": 1, "batch_size": 4})
    assert m["passed"] and m["model_file"]["sha256"] == json.loads((run.path / "run.json").read_text())["model_file"]["sha256"]
    ok = subprocess.run([KILN, "predict", str(run.path), *example.predict_inputs], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and json.loads(ok.stdout.splitlines()[0])["label"], ok.stderr  # a new process imports the file
    original = models_file.read_text()
    try:
        models_file.write_text(original + "\n# edited\n")
        p = subprocess.run([KILN, "predict", str(run.path), *example.predict_inputs], capture_output=True, text=True, timeout=300)
    finally:
        models_file.write_text(original)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "changed since training" in lines[0] and str(models_file) in lines[0], p.stderr


def test_image_regression_with_a_functional_body(models_file, tmp_path):
    import sys

    import kiln

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from synth import make_value_images

    csv = make_value_images(tmp_path / "data", n=30, size=16)
    run = kiln.train(data=str(csv), target="brightness", model=f"{models_file}:functional", epochs=2, image_size=16, seed=0,
                     run_dir=str(tmp_path / "run"), train={"verbose": 0, "tensorboard": False}, evaluate={"report": False})
    assert run.model.output_shape == (None, 1) and set(run.metrics["test"]) >= {"r2", "rmse"}


@pytest.mark.parametrize("function,words", [
    ("missing.py:build", ["does not exist"]),
    ("nets.py:nothing", ["defines no function nothing", "functional"]),
    ("nets.py:raises", ["raises(spec) raised RuntimeError: no GPU here"]),
    ("nets.py:not_a_model", ["returned str, not a keras.Model"]),
    ("nets.py:wrong_outputs", ["needs (N, 3)"]),
    ("nets.py:no_softmax", ["not class probabilities", "softmax"]),
    ("nets.py:lambda_layer", ["Lambda layer", "register_keras_serializable"]),
])
def test_a_bad_model_file_is_one_line_naming_it(function, words, models_file, tmp_path):
    task = TASKS["image"]
    model = str(models_file.parent / function)
    with pytest.raises(ConfigError) as err:
        _train(task, tmp_path, model)
    text = str(err.value)
    assert "\n" not in text and model in text and all(w in text for w in words), text
    assert not (tmp_path / "run" / "run.json").exists()


def test_the_cli_says_it_in_one_line_with_exit_2(tmp_path):
    task = TASKS["image"]
    example = task.example(tmp_path, seed=0)
    p = subprocess.run([KILN, "train", f"data={example.overrides['data']}", "model=nowhere/net.py:build", "epochs=1"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "nowhere/net.py does not exist" in p.stderr, p.stderr


def test_safe_mode_still_refuses_a_saved_lambda_layer(tmp_path):
    import keras

    from kiln.io import load_keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    model.save(tmp_path / "m.keras")
    with pytest.raises(KilnError, match="Lambda"):
        load_keras(tmp_path / "m.keras")
