"""weights=: a trained run's backbone transfers to a new dataset; files round-trip; offline imagenet fails in one line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth import COLOURS, draw

from conftest import KILN
from kiln.errors import ConfigError, KilnError

QUIET = {"verbose": 0, "tensorboard": False}
SMALL_CNN = {"filters": [16, 32], "units": [32], "batchnorm": False}


def shape_folder(root: Path, shapes: list[int], names: list[str], per_split: dict, seed: int) -> Path:
    """Classes differ only by the drawn shape: synth's shapes recoloured at random, so colour says nothing."""
    rng = np.random.default_rng(seed)
    for split, n in per_split.items():
        for name, c in zip(names, shapes):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = draw(c, 32, rng)
                mask = (img == np.array(COLOURS[c % len(COLOURS)], np.uint8)).all(-1)
                img[mask] = rng.integers(90, 256, 3, dtype=np.uint8)
                Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root


def test_run_backbone_transfers_to_a_related_dataset(tmp_path):
    import kiln

    # A: four shapes, plenty of images. B: three of those shapes under new names, in a new order, 8 images each.
    a = shape_folder(tmp_path / "a", [0, 1, 2, 3], ["hbar", "vbar", "square", "diagonal"], {None: 60}, seed=0)
    b = shape_folder(tmp_path / "b", [3, 0, 1], ["p", "q", "r"], {"train": 8, "val": 4, "test": 25}, seed=1)
    source = kiln.train(data=str(a), run_dir=str(tmp_path / "runA"), epochs=22, seed=1, lr=3e-3, batch_size=16,
                        image_size=32, train=QUIET, model=SMALL_CNN)
    assert source.metrics["val"]["accuracy"] >= 0.75  # A learned shapes

    same = dict(data=str(b), epochs=5, seed=0, lr=0.02, batch_size=4, image_size=32, train=QUIET, model=SMALL_CNN)
    transfer = kiln.train(run_dir=str(tmp_path / "transfer"), weights=str(source.path), finetune_epochs=0, **same)
    scratch = kiln.train(run_dir=str(tmp_path / "scratch"), **same)

    # model=auto became the source's model, and its backbone holds A's trained weights.
    assert transfer.meta["model"] == "cnn"
    src_conv = source.model.get_layer("block1_conv1").get_weights()[0]
    new_conv = transfer.model.get_layer("backbone").get_layer("block1_conv1").get_weights()[0]
    np.testing.assert_array_equal(src_conv, new_conv)  # frozen in phase 1, so unchanged
    acc_t, acc_s = transfer.metrics["test"]["accuracy"], scratch.metrics["test"]["accuracy"]
    assert acc_t >= 0.8, (acc_t, acc_s)
    assert acc_t >= acc_s + 0.2, (acc_t, acc_s)


def _save_small(tmp_path, shape=(16, 16, 3), k=3, name="m.keras"):
    from kiln.tasks.image.models import create_model

    model = create_model("cnn", shape, k, filters=[8], units=[8])
    model.save(tmp_path / name)
    return model


def test_keras_file_backbone_with_grey_and_size_adapters(tmp_path):
    from kiln.tasks.image.models import create_model

    source = _save_small(tmp_path, shape=(16, 16, 3))
    model = create_model("cnn", (24, 24, 1), 5, weights=str(tmp_path / "m.keras"))
    assert model.input_shape == (None, 24, 24, 1)
    backbone = model.get_layer("backbone")
    assert backbone.input_shape == (None, 16, 16, 3)
    assert {layer.name for layer in model.layers} >= {"grey_to_rgb", "resize_to_backbone", "backbone", "predictions"}
    np.testing.assert_array_equal(backbone.get_layer("block1_conv1").get_weights()[0],
                                  source.get_layer("block1_conv1").get_weights()[0])
    # Grey images go through the source's feature extractor as RGB copies at its size.
    grey = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 1)).astype("float32")
    small = create_model("cnn", (16, 16, 1), 5, weights=str(tmp_path / "m.keras"))
    feats = small.get_layer("backbone")(np.repeat(grey, 3, axis=-1), training=False)
    ref = source.get_layer("predictions").input
    import keras

    expected = keras.Model(source.inputs, ref)(np.repeat(grey, 3, axis=-1), training=False)
    np.testing.assert_allclose(np.asarray(feats), np.asarray(expected), rtol=1e-5, atol=1e-6)
    assert model.predict(np.zeros((2, 24, 24, 1), "uint8"), verbose=0).shape == (2, 5)


def test_weights_h5_round_trip_and_mismatch(tmp_path):
    from kiln.tasks.image.models import create_model

    model = create_model("cnn", (16, 16, 3), 3, filters=[8], units=[8])
    model.save_weights(tmp_path / "w.weights.h5")
    x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)).astype("float32")
    same = create_model("cnn", (16, 16, 3), 3, filters=[8], units=[8], weights=str(tmp_path / "w.weights.h5"))
    np.testing.assert_allclose(same(x, training=False), model(x, training=False), rtol=1e-6)
    # Four classes instead of three: every layer but the classifier is loaded.
    other = create_model("cnn", (16, 16, 3), 4, filters=[8], units=[8], weights=str(tmp_path / "w.weights.h5"))
    np.testing.assert_array_equal(other.get_layer("block1_conv1").get_weights()[0], model.get_layer("block1_conv1").get_weights()[0])
    with pytest.raises(ConfigError, match="do not fit dnn"):
        create_model("dnn", (16, 16, 3), 3, units=[7], weights=str(tmp_path / "w.weights.h5"))


@pytest.mark.parametrize("value, message", [
    ("nowhere/at/all", "model received weights=nowhere/at/all; no such file or folder"),
    ("imagenet", "model received weights=imagenet; cnn has no ImageNet weights"),
])
def test_weights_mistakes_are_one_line(value, message):
    from kiln.tasks.image.models.weights import check_weights

    with pytest.raises(ConfigError) as err:
        check_weights("cnn", value)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_run_folder_of_another_model_is_refused(tiny_run):
    from kiln.tasks.image.models.weights import auto_model, check_weights

    assert auto_model(str(tiny_run.path)) == tiny_run.meta["model"]
    with pytest.raises(ConfigError, match=f"is a {tiny_run.meta['model']} model.*Leave model=auto"):
        check_weights("dnn", str(tiny_run.path))


def test_offline_imagenet_is_one_line_naming_file_and_folder(tmp_path, shapes_dir):
    home = tmp_path / "keras_home"  # an empty Keras cache, so the download is really attempted (and fails offline)
    env = {**os.environ, "KERAS_HOME": str(home)}
    proc = subprocess.run([KILN, "train", f"data={shapes_dir}", "model=mobilenet_v3_small", "image_size=32", "epochs=1",
                           f"runs_root={tmp_path / 'runs'}", "train.verbose=0", "train.tensorboard=false"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    line = [s for s in proc.stderr.splitlines() if s.startswith("model received weights=imagenet")]
    assert len(line) == 1, proc.stderr[-2000:]
    fname = "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    assert f"place it as {home / 'models' / fname}, or train from scratch with weights=none." in line[0]
    assert "could not be downloaded" in line[0]
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # the failed start left no run folder behind


def test_cached_imagenet_file_loads_behind_the_folded_preprocessing(tmp_path, monkeypatch):
    """A keras.applications weights file already in the Keras cache is used without a download.

    MobileNetV2's file has no hash pin, so a file written here stands in for the real one; the
    backbone (preprocessing + application) must then equal the application fed `preprocess_input`.
    """
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    from kiln.tasks.image.models import create_model

    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path))
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3))
    (tmp_path / "models").mkdir()
    with h5py.File(tmp_path / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    model = create_model("mobilenet_v2", (96, 96, 3), 4)  # weights: the family default, imagenet
    x = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3)).astype("float32")
    expected = reference(keras.applications.mobilenet_v2.preprocess_input(x.copy()))
    np.testing.assert_allclose(np.asarray(model.get_layer("backbone")(x)), np.asarray(expected), rtol=1e-4, atol=1e-5)
    # A broken file in the cache is named as such (not as a failed download).
    broken = tmp_path / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_128_no_top.h5"
    broken.write_bytes(b"not hdf5")
    with pytest.raises(KilnError, match=f"^model received weights=imagenet; {broken} could not be loaded into mobilenet_v2"):
        create_model("mobilenet_v2", (128, 128, 3), 4, weights="imagenet")
    keras.backend.clear_session()
