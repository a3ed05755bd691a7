"""Where a model's starting weights come from: `model.weights=auto|imagenet|none|PATH`.

- `imagenet`: keras.applications downloads the file once into `~/.keras/models/` and reuses it.
  Offline, Kiln stops with one line naming the file and the folder to put it in.
- `none`: random initialisation (train from scratch).
- `auto` (default): `imagenet` for the keras.applications backbones, `none` for everything else.
- `PATH`, one of:
  - a Kiln run folder or a `.keras` file: its feature extractor is reused as the new model's nested
    "backbone" (the run's own "backbone" layer, or for cnn / dnn runs everything before the
    "predictions" layer) with a new head for the new classes;
  - a `.weights.h5` file (`model.save_weights`): loaded into the model named by `model.name`
    (whole model, else its backbone, else every layer whose shapes match);
  - a `.h5` file in keras.applications' format (the ImageNet file downloaded elsewhere): loaded into
    the backbone by keras.applications itself.

    model = create_model("cnn", (32, 32, 3), 4, weights="runs/shapes")  # backbone from a run
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import ConfigError, KilnError, received

log = logging.getLogger("kiln.models")

DOWNLOAD_TIMEOUT_S = 20.0  # socket timeout while keras.applications downloads: offline fails fast


@dataclass(frozen=True)
class WeightsSource:
    kind: str  # auto | imagenet | none | run | keras | weights_h5 | h5
    path: Path | None = None


def parse_weights(value) -> WeightsSource:
    """`model.weights` -> what it names; a path must exist and be one of the supported kinds."""
    if value is None or str(value).strip().lower() in ("", "none", "null", "scratch"):
        return WeightsSource("none")
    text = str(value).strip()
    if text.lower() in ("auto", "imagenet"):
        return WeightsSource(text.lower())
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "run.json").is_file() and (path / "model.keras").is_file():
            return WeightsSource("run", path)
        raise ConfigError(received("model", "weights", value, "that folder is not a finished Kiln run (no run.json / model.keras)",
                                   "Pass a run folder written by kiln train, a .keras / .weights.h5 file, imagenet or none"))
    if path.is_file():
        name = path.name.lower()
        if name.endswith(".weights.h5"):
            return WeightsSource("weights_h5", path)
        if name.endswith(".keras"):
            return WeightsSource("keras", path)
        if name.endswith(".h5"):
            return WeightsSource("h5", path)
        raise ConfigError(received("model", "weights", value, "Kiln reads .keras, .weights.h5 and keras.applications .h5 files",
                                   "Pass one of those, a Kiln run folder, imagenet or none"))
    raise ConfigError(received("model", "weights", value, "no such file or folder (and not auto, imagenet or none)",
                               "Use weights=imagenet, weights=none, or the path of a run folder / .keras / .weights.h5 file"))


def source_model_name(value) -> str | None:
    """The registered model a run folder or a Kiln `.keras` file was built as; None when unknown."""
    try:
        src = parse_weights(value)
    except KilnError:
        return None
    name = None
    if src.kind == "run":
        from kiln.io import read_json

        name = read_json(src.path / "run.json", "a Kiln run.json", fix="Pass another run folder as weights=").get("model")
    elif src.kind == "keras":
        try:
            with zipfile.ZipFile(src.path) as zf:
                name = json.loads(zf.read("config.json")).get("config", {}).get("name")
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
    from kiln.tasks.image.models.registry import list_models

    return name if name in list_models() else None


def auto_model(weights) -> str:
    """`model=auto`: the source's own model when weights name a run / Kiln .keras file, else a small CNN.

    A pretrained backbone is never picked automatically: at its own input size it is 10-100x slower
    per image than the CNN on a CPU, and tiny or grey images gain little from it. Ask for one by name.
    """
    return source_model_name(weights) or "cnn"


def check_weights(model_name: str, weights) -> None:
    """Cheap checks before any data is read: the path exists, and imagenet is asked only of pretrained models."""
    from kiln.tasks.image.models.registry import get_entry

    src = parse_weights(weights)
    entry = get_entry(model_name)
    if src.kind == "imagenet" and not entry.meta.get("pretrained"):
        raise ConfigError(_no_imagenet(entry.name))
    if src.kind in ("run", "keras"):
        known = source_model_name(src.path)
        if known and known != entry.name:
            raise ConfigError(_other_model(entry.name, src.path, known))


def _no_imagenet(name: str) -> str:
    return received("model", "weights", "imagenet", f"{name} has no ImageNet weights (it trains from scratch)",
                    "Use weights=none, or a pretrained backbone such as model=efficientnet_b0 (kiln models)")


def _other_model(name: str, path, known: str) -> str:
    return received("model", "model.name", name, f"weights={path} is a {known} model, whose backbone is reused",
                    f"Leave model=auto or use model={known}")


def keras_models_dir() -> Path:
    """The folder keras.utils.get_file caches application weights in (`~/.keras/models` by default)."""
    try:
        from keras.src.backend.config import keras_home

        base = os.path.expanduser(keras_home())
    except ImportError:  # pragma: no cover - private location moved
        base = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    if not os.access(base, os.W_OK) and not os.access(os.path.dirname(base) or ".", os.W_OK):
        base = os.path.join("/tmp", ".keras")  # what get_file itself falls back to
    return Path(base) / "models"


@contextlib.contextmanager
def imagenet_download(model_name: str, timeout: float = DOWNLOAD_TIMEOUT_S):
    """Around a keras.applications build: a failed download becomes one line naming the file and folder.

    keras.applications fetches through `keras.utils.get_file(fname, origin, cache_subdir="models")`;
    the wrapper records which file was asked for. A short socket timeout makes offline failures fast.
    """
    from keras.src.utils import file_utils

    asked: list[tuple[str, str]] = []
    fetched: list[str] = []
    original = file_utils.get_file

    def recording_get_file(fname=None, origin=None, *args, **kwargs):
        asked.append((fname or os.path.basename(str(origin)), str(origin)))
        path = original(fname, origin, *args, **kwargs)
        fetched.append(path)
        return path

    old_timeout = socket.getdefaulttimeout()
    file_utils.get_file = recording_get_file
    socket.setdefaulttimeout(timeout)
    try:
        yield
    except Exception as err:
        if not asked:
            raise
        fname, origin = asked[-1]
        folder = keras_models_dir()
        reason = str(err).split(" -- ")[-1].splitlines()[0][:120] if str(err) else type(err).__name__
        if len(fetched) == len(asked):  # the file was there; loading it failed
            raise KilnError(received(
                "model", "weights", "imagenet", f"{fetched[-1]} could not be loaded into {model_name} ({reason})",
                f"Delete that file so Keras downloads it again, or replace it with {origin}",
            )) from None
        raise KilnError(received(
            "model", "weights", "imagenet",
            f"the ImageNet weights of {model_name} are not in the Keras cache and could not be downloaded ({reason})",
            f"Download {origin} on a machine with internet and place it as {folder}/{fname}, or train from scratch with weights=none",
        )) from None
    finally:
        file_utils.get_file = original
        socket.setdefaulttimeout(old_timeout)


def load_source_model(src: WeightsSource):
    from kiln.io import load_keras

    path = src.path / "model.keras" if src.kind == "run" else src.path
    return load_keras(path, fix="Pass another .keras file or Kiln run folder as weights=")  # one line naming the file


def feature_extractor(model):
    """The reusable part of a trained model, as one keras.Model named "backbone".

    A model with a "backbone" layer gives that layer (with its trained weights); any other model gives
    everything from its input to the input of its "predictions" layer (or of its last layer).
    """
    import keras

    try:
        return model.get_layer("backbone")
    except ValueError:
        pass
    try:
        head = model.get_layer("predictions")
    except ValueError:
        head = model.layers[-1]
    return keras.Model(model.inputs, head.input, name="backbone")


def adapt_input(x, have: tuple, want: tuple):
    """Layers that turn images of shape `have` (H, W, C) into the backbone's input shape `want`."""
    import keras
    from keras import layers

    if have[-1] != want[-1]:
        if have[-1] == 1 and want[-1] == 3:
            x = layers.Concatenate(name="grey_to_rgb")([x, x, x])
        elif have[-1] == 3 and want[-1] == 1:
            x = layers.Rescaling([0.2989, 0.587, 0.114], name="rgb_to_grey")(x)  # tf.image.rgb_to_grayscale weights
            x = keras.ops.sum(x, axis=-1, keepdims=True)
        else:
            raise ConfigError(received("model", "channels", have[-1], f"the reused backbone takes {want[-1]} channels",
                                       f"Use channels={want[-1]}"))
    if tuple(have[:2]) != tuple(want[:2]):
        log.warning("model: images are %sx%s but the reused backbone was trained on %sx%s; a Resizing layer adapts them",
                    have[0], have[1], want[0], want[1])
        x = layers.Resizing(int(want[0]), int(want[1]), name="resize_to_backbone")(x)
    return x


def from_source(src: WeightsSource, name: str, input_shape, num_classes: int, dropout: float = 0.2):
    """`image -> (adapters) -> backbone of a trained model -> new head`."""
    import keras

    from kiln.tasks.image.models.backbones import classifier_head

    source = load_source_model(src)
    backbone = feature_extractor(source)
    want = tuple(int(d) for d in backbone.input_shape[1:])
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = adapt_input(inputs, tuple(input_shape), want)
    outputs = classifier_head(backbone(x), num_classes, dropout)
    log.info("model: reusing the backbone of %s (%s parameters)", src.path, f"{backbone.count_params():,}")
    return keras.Model(inputs, outputs, name=name)


def load_into(model, src: WeightsSource, name: str):
    """A `.weights.h5` file: the whole model, else its backbone, else every layer whose shapes match."""
    attempts = [(model, {})]
    try:
        attempts.append((model.get_layer("backbone"), {}))
    except ValueError:
        pass
    attempts.append((model, {"skip_mismatch": True}))
    import warnings

    errors = []
    before = [v.numpy().copy() for v in model.weights]  # initial values: a failed attempt may have loaded some
    for target, kwargs in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Keras warns per skipped object; one summary line below instead
                target.load_weights(str(src.path), **kwargs)
        except Exception as err:  # shape / structure mismatch: try the next target
            errors.append(_first_line(err))
            continue
        changed = sum(not _same(b, v.numpy()) for b, v in zip(before, model.weights))
        if not kwargs:
            return model
        if changed:
            log.warning("model: %s does not match %s exactly; loaded %d of %d weight tensors, the rest keep their "
                        "initial values", src.path.name, name, changed, len(before))
            return model
        errors.append("no weight tensor has a matching shape")
    raise ConfigError(received("model", "weights", src.path, f"its weights do not fit {name} ({errors[0]})",
                               "Use the same model.name the file was saved from, or a .keras file / run folder"))


def _same(a, b) -> bool:
    import numpy as np

    return a.shape == b.shape and np.array_equal(a, b)


def create_with_weights(entry, input_shape, num_classes: int, weights, kwargs: dict, build):
    """`create_model` with `weights=` resolved; `build(**kwargs)` calls the registered builder."""
    src = parse_weights(weights)
    pretrained = bool(entry.meta.get("pretrained"))
    if src.kind == "auto":
        src = WeightsSource("imagenet" if pretrained else "none")
    if src.kind == "imagenet" and not pretrained:
        raise ConfigError(_no_imagenet(entry.name))
    if src.kind in ("none", "imagenet"):
        return build(weights="imagenet" if src.kind == "imagenet" else None)
    if src.kind in ("run", "keras"):
        known = source_model_name(src.path)
        if known and known != entry.name:
            raise ConfigError(_other_model(entry.name, src.path, known))
        return from_source(src, entry.name, input_shape, num_classes, kwargs.get("dropout") or 0.0)
    if src.kind == "h5" and pretrained:
        try:
            return build(weights=str(src.path))
        except ValueError as err:
            raise ConfigError(received("model", "weights", src.path, f"it does not fit {entry.name} ({_first_line(err)})",
                                       f"Use the keras.applications no-top file of {entry.meta.get('application')}")) from None
    return load_into(build(weights=None), src, entry.name)


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:160]


def has_pretrained_weights(cfg, model_name: str | None = None, models=None) -> bool:
    """Whether `model.weights` gives the backbone learned features (auto: the family's own default, read
    from the task's model registry `models`, by default the config's task's)."""
    weights = cfg.image.weights
    text = "none" if weights is None else str(weights).strip().lower()
    if text in ("none", "null", "", "scratch"):
        return False
    if text == "auto":
        if model_name is None:
            return True
        if models is None:
            from kiln.tasks.image.models.registry import MODELS as models
        return bool(models.get(model_name).meta.get("pretrained", False))
    return True  # imagenet, a run folder, a .keras / .weights.h5 / .h5 file
