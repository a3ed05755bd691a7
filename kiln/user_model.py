"""`model=path/to/file.py:build`: your own Keras model, trained by Kiln for any task.

The task keeps its preparation inside the model: it builds the front (image rescaling, a table's column
encodings, text's vectorizer, a series window's scaling) and the fixed end (a regression's target scale, a
forecast's un-scaling), and your `build(spec)` returns the body between them, a `keras.Model` from
`spec.input_shape` to `spec.outputs` units (`spec.activation`: softmax for class probabilities, linear for
values). Exports and serving see one model with raw inputs, as for Kiln's own models.

    def build(spec):                    # spec: BuildSpec (task, input_shape, input_dtype, outputs, output, activation, classes, extra)
        return keras.Sequential([keras.Input(spec.input_shape), keras.layers.Flatten(),
                                 keras.layers.Dense(spec.outputs, activation=spec.activation)])

run.json records the file, the function and the file's sha256 ("model_file"); loading the run imports the file
(which registers its `@keras.saving.register_keras_serializable` classes) only while its sha256 is the same.
Safe mode stays on: a Lambda layer is refused when the model is built, with the fix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from kiln.errors import ConfigError, KilnError, received

log = logging.getLogger("kiln.model")

FIX = "Define `def build(spec): return keras.Model(...)` in that file and pass model=FILE.py:build (docs/training.md: Your own Keras model)"


@dataclass(frozen=True)
class BuildSpec:
    """What a task tells your `build(spec)`: the body's input and output, and the task's facts.

    `input_shape` leaves out the batch axis; `input_dtype` is "float32" (images: pixels scaled to [0, 1]; tables:
    encoded columns; series: scaled windows) or "int64" (text: token ids, 0 pads). `outputs` is the number of
    units of the last layer and `activation` its activation ("softmax" for `output="probabilities"`, "linear"
    for `output="value"`). `extra` holds what else the task knows (vocabulary_size, horizon, ...)."""

    task: str
    input_shape: tuple
    input_dtype: str
    outputs: int
    output: str  # "probabilities" or "value"
    activation: str
    classes: list | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def parse(name: str | None) -> tuple[str, str] | None:
    """("path/to/file.py", "build") for a `model=` value naming a Python file, else None (a registered name)."""
    if not name or ".py" not in str(name):
        return None
    path, _, func = str(name).rpartition(":")
    if not path.endswith(".py"):
        path, func = str(name), "build"
    return path, func or "build"


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _import(path: Path, name: str):
    """Execute the file as a module (registered in sys.modules so Keras finds its registered classes)."""
    module_name = f"kiln_user_{path.stem}_{sha256(path)[:12]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - the user's code: any error is one line naming it
        del sys.modules[module_name]
        raise ConfigError(received("model", "model", name, f"importing {path} raised {type(err).__name__}: {_first(err)}",
                                   "Fix the file so that `python FILE.py` runs")) from None
    return module


def load_function(name: str) -> Callable:
    """The `build` function a `model=FILE.py:FUNC` names; a missing file or function is one ConfigError line."""
    path, func = parse(name)
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(received("model", "model", name, f"{file} does not exist", FIX))
    module = _import(file.resolve(), name)
    fn = getattr(module, func, None)
    if not callable(fn):
        defined = sorted(k for k, v in vars(module).items() if callable(v) and getattr(v, "__module__", None) == module.__name__)
        raise ConfigError(received("model", "model", name, f"{file} defines no function {func}"
                                   + (f" (it defines {', '.join(defined[:5])})" if defined else ""), FIX))
    return fn


def register(task, name: str) -> bool:
    """Register `model=FILE.py:FUNC` in `task`'s model registry (under that name) through `task.custom_model`;
    False when `name` is a registered model name."""
    if parse(name) is None:
        return False
    fn = load_function(name)  # again each time: the registry keeps the latest file under its name
    task.models.register(name, family="custom")(task.custom_model(lambda spec: body(fn, spec, name)))
    return True


def body(fn: Callable, spec: BuildSpec, name: str):
    """`fn(spec)`, checked: a keras.Model without Lambda layers whose output is (N, spec.outputs), probabilities
    when the task needs them. Every problem is one ConfigError line naming the file and the fix."""
    import keras
    import numpy as np

    try:
        model = fn(spec)
    except Exception as err:  # noqa: BLE001 - the user's code
        raise ConfigError(received("model", "model", name, f"{parse(name)[1]}(spec) raised {type(err).__name__}: {_first(err)}",
                                   f"Fix the function; it receives {_describe(spec)}")) from None
    if not isinstance(model, keras.Model):
        raise ConfigError(received("model", "model", name, f"{parse(name)[1]}(spec) returned {type(model).__name__}, not a keras.Model",
                                   "Return keras.Sequential([...]), keras.Model(inputs, outputs) or an instance of a keras.Model subclass"))
    lambdas = [layer.name for layer in _layers(model) if isinstance(layer, keras.layers.Lambda)]
    if lambdas:
        raise ConfigError(received("model", "model", name, f"the model holds a Lambda layer ({lambdas[0]}), which Keras safe mode "
                                   "refuses to load", "Write that step as a keras.layers.Layer subclass decorated with "
                                   "@keras.saving.register_keras_serializable()"))
    sample = np.zeros((2, *spec.input_shape), spec.input_dtype)
    if spec.input_dtype.startswith("float"):
        sample = np.random.default_rng(0).uniform(0, 1, sample.shape).astype(spec.input_dtype)
    try:
        out = np.asarray(keras.ops.convert_to_numpy(model(sample, training=False)))
    except Exception as err:  # noqa: BLE001
        raise ConfigError(received("model", "model", name, f"the model cannot take the task's input ({type(err).__name__}: {_first(err)})",
                                   f"Build it for {_describe(spec)}")) from None
    if out.shape != (2, spec.outputs):
        raise ConfigError(received("model", "model", name, f"the model's output has shape (N, {', '.join(map(str, out.shape[1:]))}); "
                                   f"this task needs (N, {spec.outputs})", f"End with keras.layers.Dense(spec.outputs, activation=spec.activation)"))
    if spec.output == "probabilities" and not (np.all(out >= -1e-6) and np.allclose(out.sum(-1), 1.0, atol=1e-3)):
        raise ConfigError(received("model", "model", name, "the model's outputs are not class probabilities (rows must sum to 1)",
                                   "End with keras.layers.Dense(spec.outputs, activation=\"softmax\")"))
    return model


def _layers(model):
    seen, stack = [], list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        seen.append(layer)
        stack.extend(getattr(layer, "layers", None) or [])
    return seen


def _describe(spec: BuildSpec) -> str:
    return (f"input_shape={tuple(spec.input_shape)} {spec.input_dtype}, outputs={spec.outputs} "
            f"({spec.output}, activation={spec.activation})")


def _first(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


# ---- the run folder ---------------------------------------------------------------------------------------

def meta(name: str) -> dict:
    """run.json's "model_file" for a `model=FILE.py:FUNC` ({} for a registered model)."""
    parsed = parse(name)
    if parsed is None:
        return {}
    file = Path(parsed[0]).expanduser().resolve()
    return {"model_file": {"path": str(file), "function": parsed[1], "sha256": sha256(file)}}


def prepare_load(meta: Mapping) -> str | None:
    """Before loading a run (or an export) trained with your model: import the file when its sha256 is the one
    recorded, so its registered classes load. Returns None, or what changed (the file then is not imported)."""
    rec = meta.get("model_file")
    if not rec:
        return None
    file = Path(rec["path"])
    if not file.is_file():
        return f"the model file {file} it was trained with no longer exists"
    now = sha256(file)
    if now != rec["sha256"]:
        return (f"the model file {file} changed since training (sha256 {rec['sha256'][:12]}... then, {now[:12]}... now), "
                "so it was not imported")
    _import(file, f"{file}:{rec['function']}")
    return None


def load_model(path: Path, meta: Mapping, load: Callable):
    """`load(path)` after `prepare_load`: a model that needs the file fails with one line saying what changed."""
    changed = prepare_load(meta)
    if changed is None:
        return load(path)
    try:
        model = load(path)
    except KilnError:
        raise KilnError(received("run", "model_file", meta["model_file"]["path"], f"{path} cannot load without it: {changed}",
                                 "Restore the file as it was when the run trained (run.json model_file.sha256), or train again")) from None
    log.warning("run: %s; the model loads without it", changed)
    return model


__all__ = ["BuildSpec", "body", "load_function", "load_model", "meta", "parse", "prepare_load", "register", "sha256"]
