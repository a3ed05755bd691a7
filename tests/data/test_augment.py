"""Augmentation: config -> Keras preprocessing layers in tf.data, seeded, training-only, never in the model."""

from __future__ import annotations


import numpy as np
import pytest

from kiln.tasks.image.config import AugmentConfig

ALL_ON = dict(flip="both", rotation=0.1, zoom=0.2, translation=0.1, shear=0.2, crop=0.2, perspective=0.3, contrast=0.3,
              brightness=0.2, saturation=0.5, hue=0.2, grayscale=0.3, sharpness=0.5, blur=0.5, erasing=0.5,
              randaugment=True, augmix=True, mixup=0.2, cutmix=1.0)


def batch(n=8, size=32, channels=3, k=3, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    images = tf.constant(rng.integers(0, 256, (n, size, size, channels)), tf.uint8)
    return images, tf.one_hot(np.arange(n) % k, k)


def test_every_key_is_a_layer_and_nothing_is_on_by_default():
    from kiln.tasks.image.data.augment import active, build_augment, image_layers

    assert active(AugmentConfig()) == [] and build_augment(AugmentConfig(), (32, 32), 3) is None
    cfg = AugmentConfig(**ALL_ON)
    assert set(active(cfg)) == set(ALL_ON)
    names = [type(layer).__name__ for layer in image_layers(cfg, (32, 32), 3)]
    assert names == ["RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomShear", "RandomCrop",
                     "Resizing", "RandomPerspective", "RandomBrightness", "RandomContrast", "RandomSaturation", "RandomHue",
                     "RandomGrayscale", "RandomSharpness", "RandomGaussianBlur", "RandAugment", "AugMix", "RandomErasing"]
    grey = [type(layer).__name__ for layer in image_layers(cfg, (32, 32), 1)]
    assert not {"RandomSaturation", "RandomHue", "RandomGrayscale", "AugMix"} & set(grey)  # colour-only ops left out


@pytest.mark.parametrize("channels", [3, 1])
def test_all_on_keeps_shape_dtype_and_label_mass(channels):
    from kiln.tasks.image.data.augment import build_augment

    images, labels = batch(channels=channels)
    out, soft = build_augment(AugmentConfig(**ALL_ON), (32, 32), channels, seed=3)(images, labels)
    assert out.dtype.name == "uint8" and tuple(out.shape) == (8, 32, 32, channels)
    np.testing.assert_allclose(soft.numpy().sum(axis=1), 1.0, rtol=1e-5)
    assert not np.array_equal(out.numpy(), images.numpy())


def test_seeded_in_tf_data_and_different_each_epoch():
    import tensorflow as tf

    from kiln.tasks.image.data.augment import build_augment

    images, labels = batch()

    def epochs(seed):
        fn = build_augment(AugmentConfig(flip="both", rotation=0.2, mixup=0.4), (32, 32), 3, seed=seed)
        return [x.numpy() for x, _ in tf.data.Dataset.from_tensors((images, labels)).repeat(2).map(fn)]

    first, again, other = epochs(1), epochs(1), epochs(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # same seed, same augmentations
    assert not np.array_equal(first[0], other[0]) and not np.array_equal(first[0], first[1])


@pytest.mark.parametrize("key", ["mixup", "cutmix"])
def test_mixing_softens_labels_consistently(key):
    from kiln.tasks.image.data.augment import build_augment

    images, labels = batch(n=16)
    fn = build_augment(AugmentConfig(**{key: 1.0}), (32, 32), 3, seed=0)
    out, soft = fn(images, labels)
    soft = soft.numpy()
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)
    assert (soft.max(axis=1) < 0.999).any() and soft.min() >= 0  # some rows are now mixtures of two classes


def test_trained_model_has_no_augmentation_and_config_keeps_it(tmp_path, shapes_dir):
    import kiln

    run = kiln.train(data=str(shapes_dir), run_dir=str(tmp_path / "run"), epochs=2, image_size=32, seed=0,
                     augment={"flip": "horizontal", "rotation": 0.05, "mixup": 0.2},
                     train={"verbose": 0, "tensorboard": False}, model={"filters": [8], "units": [8]})
    kinds = {type(layer).__name__ for layer in run.model._flatten_layers()}
    assert not {k for k in kinds if k.startswith("Random") or k in ("MixUp", "CutMix", "RandAugment")}
    assert run.config.image.augment.flip == "horizontal" and run.config.image.augment.mixup == 0.2
    assert len(run.history) == 2


def test_augment_preview_cli_writes_grid(tmp_path, shapes_dir, capsys):
    from PIL import Image

    from kiln.cli import main  # the console script's body in this process

    out = tmp_path / "grid.png"
    assert main(["augment-preview", f"data={shapes_dir}", "image_size=32", "flip=horizontal", "rotation=0.1",
                 "cutmix=1.0", f"out={out}", "samples=3", "variants=4"]) == 0
    assert f"kiln: augment preview {out}" in capsys.readouterr().out
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (160 * 5, 170 * 3)  # 1 + 4 columns, 3 rows at 100 dpi


def test_augment_preview_refuses_nothing_on_and_existing_out(tmp_path, shapes_dir):
    import kiln
    from kiln.errors import ConfigError

    with pytest.raises(ConfigError, match="^augment-preview received augment=<all off>; no augmentation is switched on"):
        kiln.augment_preview(data=str(shapes_dir), translation=0, zoom=0, rotation=0)  # the mild defaults turned off
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    with pytest.raises(ConfigError, match="Kiln never overwrites a file"):
        kiln.augment_preview(data=str(shapes_dir), out=str(taken), flip="horizontal")
    assert taken.read_bytes() == b"mine"
