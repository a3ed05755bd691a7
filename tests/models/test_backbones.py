"""Every registered backbone builds and predicts at a small input size; preprocessing matches Keras's own."""

from __future__ import annotations

import numpy as np
import pytest

from kiln.errors import ConfigError
from kiln.tasks.image.models import create_model, get_entry, list_models

PRETRAINED = [n for n in list_models() if get_entry(n).family not in ("simple", "vit")]
VIT = list_models("vit_*")


def test_registry_lists_every_family_and_size():
    assert len(PRETRAINED) == 37 and VIT == ["vit_base", "vit_small", "vit_tiny"]
    assert len(list_models("efficientnet_b*")) == 8 and len(list_models("efficientnetv2_*")) == 7
    assert len(list_models("convnext_*")) == 5 and len(list_models("densenet*")) == 3
    sizes = {n: get_entry(n).default_size for n in ("efficientnet_b0", "efficientnet_b7", "efficientnetv2_s",
                                                    "inception_v3", "xception", "resnet50", "vit_tiny")}
    assert sizes == {"efficientnet_b0": 224, "efficientnet_b7": 600, "efficientnetv2_s": 384, "inception_v3": 299,
                     "xception": 299, "resnet50": 224, "vit_tiny": 224}


@pytest.mark.parametrize("name", PRETRAINED + VIT)
def test_backbone_builds_and_predicts_small(name):
    import keras

    side = get_entry(name).meta.get("min_size", 32)
    model = create_model(name, (side, side, 3), 3, weights="none")
    try:
        assert model.name == name and model.input_shape == (None, side, side, 3)
        backbone = model.get_layer("backbone")  # the nested feature extractor fine-tuning freezes
        assert isinstance(backbone, keras.Model) and backbone.input_shape == (None, side, side, 3)
        assert model.layers[-1].name == "predictions" and model.layers[-1].dtype_policy.compute_dtype == "float32"
        pixels = np.random.default_rng(0).integers(0, 256, (2, side, side, 3)).astype("float32")
        probs = np.asarray(model(pixels, training=False))
        assert probs.shape == (2, 3) and np.all(np.isfinite(probs))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    finally:
        del model
        keras.backend.clear_session()


@pytest.mark.parametrize("mode, reference", [
    ("caffe", "keras.applications.resnet.preprocess_input"),
    ("caffe", "keras.applications.vgg16.preprocess_input"),
    ("tf", "keras.applications.inception_v3.preprocess_input"),
    ("tf", "keras.applications.mobilenet_v2.preprocess_input"),
    ("torch", "keras.applications.densenet.preprocess_input"),
])
def test_folded_preprocessing_equals_keras_preprocess_input(mode, reference):
    import importlib

    import keras

    from kiln.tasks.image.models.backbones import preprocess

    module, fn = reference.rsplit(".", 1)
    keras_fn = getattr(importlib.import_module(module), fn)
    pixels = keras.Input((8, 8, 3))
    folded = keras.Model(pixels, preprocess(pixels, mode))
    x = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(folded(x)), keras_fn(x.copy()), rtol=1e-5, atol=1e-4)


def test_folded_preprocessing_survives_save_and_safe_load(tmp_path):
    import keras

    model = create_model("vgg16", (32, 32, 3), 2, weights="none")  # caffe mode: RGB->BGR op + mean offsets
    model.save(tmp_path / "v.keras")
    loaded = keras.saving.load_model(tmp_path / "v.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(2).integers(0, 256, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    keras.backend.clear_session()


def test_too_small_or_grey_input_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"^model received image_size=32x32; inception_v3 needs images of at least 75x75"):
        create_model("inception_v3", (32, 32, 3), 2, weights="none")
    with pytest.raises(ConfigError, match=r"^model received channels=1; resnet50 takes RGB images"):
        create_model("resnet50", (32, 32, 1), 2, weights="none")


def test_vit_trains_from_scratch():
    """A tiny ViT learns a colour-coded task in a few epochs (the patch/position/attention path trains)."""
    import keras

    from kiln.tasks.image.models.vit import vit_backbone
    from kiln.tasks.image.models.backbones import with_head
    from synth import draw

    rng = np.random.default_rng(0)
    x = np.stack([draw(i % 3, 32, rng) for i in range(48)]).astype("float32")
    y = keras.utils.to_categorical(np.arange(48) % 3, 3)
    keras.utils.set_random_seed(0)
    model = with_head(vit_backbone((32, 32, 3), dim=32, depth=2, heads=2, mlp=64), (32, 32, 3), 3, 0.0, "vit_test")
    assert model.get_layer("backbone").get_layer("patch_embed").kernel.shape == (4, 4, 3, 32)  # auto patch: 32 px -> 4
    model.compile(keras.optimizers.Adam(3e-3), "categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=6, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] >= 0.9
    keras.backend.clear_session()


def test_backbone_from_scratch_generalises(tmp_path):
    """weights=none: BatchNorm momentum 0.9 (the applications' 0.999 left val/test at chance on small data),
    kept through save and load."""
    import keras

    import kiln
    from synth import make_image_folder

    data = make_image_folder(tmp_path / "data", classes=3, per_class=160, size=32, seed=5)  # 12 steps an epoch
    run = kiln.train(data=str(data), run_dir=str(tmp_path / "run"), model="mobilenet_v3_small", weights="none",
                     image_size=32, epochs=8, seed=0, train={"verbose": 0, "tensorboard": False},
                     evaluate={"report": False})
    assert run.metrics["test"]["accuracy"] >= 0.8 and run.metrics["val"]["accuracy"] >= 0.8  # chance is 0.33
    loaded = keras.saving.load_model(run.path / "model.keras")
    momenta = {layer.momentum for layer in loaded.get_layer("backbone").layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}
