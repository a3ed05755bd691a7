"""Augmentation: the `augment` config section -> Keras 3 preprocessing layers, run in tf.data on the CPU.

`build_augment(cfg, size, channels, seed)` returns a batch function `(images, one_hot) -> (images,
one_hot)` for `make_dataset(..., augment=fn)`, which maps it after the cache, on training batches
only. It is never part of the model, so exports and serving see exactly the evaluation pipeline.

Per-image layers run in a fixed order (geometry, colour, RandAugment / AugMix, erasing); MixUp and
CutMix act on the whole batch and mix the one-hot labels too (with both on, each batch gets one).
Each layer gets its own seed derived from `seed`. Images go back to uint8 (rounded, clipped).

    fn = build_augment(AugmentConfig(flip="horizontal", mixup=0.2), (32, 32), 3, seed=0)
    ds = make_dataset(paths, labels, k, size=(32, 32), channels=3, training=True, augment=fn)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kiln.config.schema import Config
from kiln.tasks.image.config import AugmentConfig, image_data

log = logging.getLogger("kiln.data")

RGB_ONLY = ("saturation", "hue", "grayscale", "augmix")


def active(cfg: AugmentConfig) -> list[str]:
    """The augmentation keys that are switched on (an unresolved `auto` is off: kiln/train/auto.py decides it)."""
    return [k for k in AugmentConfig.model_fields
            if not k.startswith("randaugment_") and getattr(cfg, k) not in (0, 0.0, False, "none", "auto")]


def image_layers(cfg: AugmentConfig, size: tuple[int, int], channels: int, seed: int = 0) -> list:
    """Per-image Keras layers for the keys that are on, in pipeline order, each with its own seed."""
    from keras import layers

    h, w = int(size[0]), int(size[1])
    out: list = []
    cfg = cfg.model_copy(update={k: 0.0 for k in ("rotation", "zoom", "translation", "hue", "saturation")
                                 if getattr(cfg, k) == "auto"})

    def add(layer_cls, *args, **kwargs):
        out.append(layer_cls(*args, seed=seed + 1 + len(out), **kwargs))

    skipped = [k for k in RGB_ONLY if channels != 3 and getattr(cfg, k)]
    if skipped:
        log.warning("augment: %s need RGB images; the images have channels=%d, so they are left out", ", ".join(skipped), channels)
    rgb = channels == 3
    if cfg.flip != "none":
        add(layers.RandomFlip, {"both": "horizontal_and_vertical"}.get(cfg.flip, cfg.flip))
    if cfg.rotation:
        add(layers.RandomRotation, cfg.rotation)
    if cfg.zoom:
        add(layers.RandomZoom, cfg.zoom)
    if cfg.translation:
        add(layers.RandomTranslation, cfg.translation, cfg.translation)
    if cfg.shear:
        add(layers.RandomShear, x_factor=cfg.shear, y_factor=cfg.shear)
    if cfg.crop:
        ch, cw = max(1, int(round(h * (1 - cfg.crop)))), max(1, int(round(w * (1 - cfg.crop))))
        add(layers.RandomCrop, ch, cw)
        out.append(layers.Resizing(h, w))
    if cfg.perspective:
        add(layers.RandomPerspective, factor=(0.5, 0.5), scale=cfg.perspective)
    if cfg.brightness:
        add(layers.RandomBrightness, cfg.brightness, value_range=(0, 255))
    if cfg.contrast:
        add(layers.RandomContrast, cfg.contrast, value_range=(0, 255))
    if cfg.saturation and rgb:
        add(layers.RandomSaturation, (0.5 - cfg.saturation / 2, 0.5 + cfg.saturation / 2), value_range=(0, 255))
    if cfg.hue and rgb:
        add(layers.RandomHue, cfg.hue, value_range=(0, 255))
    if cfg.grayscale and rgb:
        add(layers.RandomGrayscale, cfg.grayscale)
    if cfg.sharpness:
        add(layers.RandomSharpness, (0.5 - cfg.sharpness / 2, 0.5 + cfg.sharpness / 2), value_range=(0, 255))
    if cfg.blur:
        add(layers.RandomGaussianBlur, cfg.blur, value_range=(0, 255))
    if cfg.randaugment:
        add(layers.RandAugment, value_range=(0, 255), num_ops=cfg.randaugment_ops, factor=cfg.randaugment_magnitude)
    if cfg.augmix and rgb:
        add(layers.AugMix, value_range=(0, 255))
    if cfg.erasing:
        add(layers.RandomErasing, factor=(cfg.erasing, cfg.erasing), value_range=(0, 255))
    return out


def build_augment(cfg: AugmentConfig, size: tuple[int, int], channels: int, seed: int = 0):
    """A tf.data batch function `(uint8 (B,H,W,C), one-hot (B,K)) -> same`, or None when nothing is on."""
    import tensorflow as tf
    from keras import layers

    per_image = image_layers(cfg, size, channels, seed)
    mixers = []
    if cfg.mixup:
        mixers.append(layers.MixUp(alpha=cfg.mixup, seed=seed + 101))
    if cfg.cutmix:
        mixers.append(layers.CutMix(factor=cfg.cutmix, seed=seed + 102))
    if not per_image and not mixers:
        return None
    pick = tf.random.Generator.from_seed(seed + 103) if len(mixers) == 2 else None

    def mix(layer, x, y):
        out = layer({"images": x, "labels": y}, training=True)
        return out["images"], tf.cast(out["labels"], y.dtype)

    def augment(images, labels):
        x = tf.cast(images, tf.float32)  # (B, H, W, C)
        for layer in per_image:
            x = layer(x, training=True)
        if len(mixers) == 1:
            x, labels = mix(mixers[0], x, labels)
        elif mixers:
            x, labels = tf.cond(pick.uniform([]) < 0.5, lambda: mix(mixers[0], x, labels),
                                lambda: mix(mixers[1], x, labels))
        x = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
        return x, labels

    return augment


def augment_preview(cfg: Config, out: str | Path | None = None, samples: int = 8, variants: int = 5) -> Path:
    """A PNG grid: one row per sampled training image, its original then `variants` augmented copies."""
    import tensorflow as tf

    from kiln.tasks.image.data import check, sources
    from kiln.tasks.image.data.pipeline import make_dataset
    from kiln.tasks.image.data.prepare import resolve_spec
    from kiln.errors import ConfigError, received
    from kiln.tasks.image.models import get_entry
    from kiln.tasks.image.models.weights import auto_model

    frame = sources.discover(cfg.data.path)
    rng = np.random.default_rng(cfg.seed)
    picked = frame.iloc[rng.permutation(len(frame))[: min(samples, len(frame))]].reset_index(drop=True)
    facts = check.scan(picked["path"].tolist(), cfg.image.max_pixels)
    picked = picked[facts["ok"].to_numpy()].reset_index(drop=True)
    if picked.empty:
        raise ConfigError(received("augment-preview", "data", cfg.data.path, "none of the sampled files decodes as an image",
                                   "Check the files with kiln audit"))
    classes = sorted(frame["label"].unique())
    y = picked["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    entry = get_entry(cfg.model.name if cfg.model.name != "auto" else auto_model(cfg.image.weights))
    spec = resolve_spec(image_data(cfg), facts[facts["ok"]], entry.default_size, needs_rgb=entry.family not in ("simple", "custom"),
                        n_train=len(frame))
    from kiln.tasks.image.auto import resolve
    from kiln.tasks.image.models.weights import has_pretrained_weights

    cfg = resolve(cfg, spec=spec, n_train=len(frame), n_val=0, model_name=entry.name, family=entry.family,
                  pretrained=has_pretrained_weights(cfg, entry.name))[0]  # augment=auto as training would take it
    if not active(cfg.image.augment):
        raise ConfigError(received("augment-preview", "augment", "<all off>", "no augmentation is switched on",
                                   "Example: kiln augment-preview data=DIR flip=horizontal rotation=0.05 mixup=0.2"))
    ds = make_dataset(picked["path"].tolist(), y, len(classes), size=spec.size, channels=spec.channels,
                      resize=spec.resize, batch_size=len(picked), background=spec.alpha_background)
    images, onehot = next(iter(ds))  # (n, H, W, C) uint8, (n, K)
    fn = build_augment(cfg.image.augment, spec.size, spec.channels, cfg.seed)
    aug, soft = fn(tf.repeat(images, variants, axis=0), tf.repeat(onehot, variants, axis=0))
    grid = _draw(images.numpy(), aug.numpy().reshape((len(picked), variants) + tuple(images.shape[1:])),
                 soft.numpy().reshape(len(picked), variants, -1), classes, picked["label"].tolist())
    if out and Path(out).exists():
        raise ConfigError(received("augment-preview", "out", out, "that file exists and Kiln never overwrites a file",
                                   "Pick a new name or leave out= unset to auto-number"))
    dest = Path(out) if out else _free_path(Path(cfg.runs_root) / "augment-preview.png")
    from kiln.io import atomic_path

    with atomic_path(dest) as tmp:
        grid.savefig(tmp, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(grid)
    return dest


def _draw(originals, augmented, soft, classes, labels):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, v = augmented.shape[:2]
    fig, axes = plt.subplots(n, v + 1, figsize=(1.6 * (v + 1), 1.7 * n), squeeze=False)
    for i in range(n):
        for j in range(v + 1):
            img = originals[i] if j == 0 else augmented[i, j - 1]
            ax = axes[i, j]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_title(f"{labels[i]}", fontsize=7)
            else:
                top = np.argsort(soft[i, j - 1])[::-1][:2]
                parts = [f"{classes[t]} {soft[i, j - 1][t]:.2f}" for t in top if soft[i, j - 1][t] > 0.005]
                ax.set_title("\n".join(parts), fontsize=6)
    fig.suptitle("original | augmented copies (label weights)", fontsize=8)
    fig.tight_layout()
    return fig


def _free_path(path: Path) -> Path:
    """`path`, or path-2, path-3 ... : never overwrite an existing file."""
    if not path.exists():
        return path
    for i in range(2, 100000):
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not candidate.exists():
            return candidate
    return path

