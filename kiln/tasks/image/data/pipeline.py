"""The tf.data input pipeline: shuffle file names, batch them, decode + resize each batch in parallel,
optional cache, prefetch.

Images leave the pipeline as uint8 `(B, H, W, C)` raw pixels and one-hot labels; rescaling lives
inside the model. Augmentation (when configured) runs after the cache, on the CPU.

Decoding is one NumPy call per *batch* (`decode_batch`), not per image: libjpeg-turbo (simplejpeg) and
OpenCV release the GIL, so several batches decode at once on every core, and the per-image cost is the
decode and resize themselves rather than graph and Python-call overhead (bench/pipeline.py measures it
against `image_dataset_from_directory` and a decode-only ceiling). Training, evaluation, TFRecord shards
and the server all decode with `decode_bytes`, so a file gives the same pixels everywhere; transparent
images are composited onto `background` there too (kiln/tasks/image/data/alpha.py; channels=4 keeps alpha).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from kiln.tasks.image.data import alpha
from kiln.tasks.image.data.decode import _decode, _pil_load, _rgb, decode_batch, decode_bytes, resize_array  # noqa: F401

AUTOTUNE = tf.data.AUTOTUNE
PREFETCH = 2  # batches ready ahead of the consumer (the parallel decode keeps its own in flight too)


def decode_batch_op(items: tf.Tensor, use_pil: tf.Tensor, size, channels: int, resize: str, *, files: bool,
                    background=alpha.DEFAULT) -> tf.Tensor:
    """Graph op: a batch of paths (`files=True`) or encoded images -> (B, H, W, C) uint8, one NumPy call."""
    size = tuple(size)
    background = _rgb(background)
    images = tf.numpy_function(lambda b, u: decode_batch(b, size, channels, resize, u, files=files, background=background),
                               [items, use_pil], tf.uint8, stateful=False)
    images.set_shape([None, size[0], size[1], channels])
    return images


def caches(cache: str, cache_dir: str | None) -> bool:
    """Whether the dataset will cache decoded images (`disk` needs a folder)."""
    return cache == "memory" or (cache == "disk" and bool(cache_dir))


def decode_in_batches(ds: tf.data.Dataset, decode, *, n: int, batch_size: int, training: bool, seed: int, cache: str,
                      cache_dir: str | None, shuffle_buffer: int, augment, drop_remainder: bool) -> tf.data.Dataset:
    """Undecoded elements -> batches decoded by `decode` (one call per batch) -> what training reads.

    With a cache, decoded images are cached one by one and reshuffled across batches each epoch; then
    augmentation (training only) and prefetch."""
    cached = caches(cache, cache_dir)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder and not cached)
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE)
    if cached:
        ds = ds.unbatch()
        ds = ds.cache() if cache == "memory" else ds.cache(cache_dir)
        if training:
            ds = ds.shuffle(min(shuffle_buffer, n), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
        # unbatch() forgets the length; Keras 3 then counts one extra step per epoch (LR schedules drift)
        ds = ds.apply(tf.data.experimental.assert_cardinality(n // batch_size if drop_remainder else -(-n // batch_size)))
    if augment is not None and training:
        ds = ds.map(augment, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(PREFETCH).with_options(pipeline_options(deterministic=not training or cached))


def pipeline_options(deterministic: bool) -> tf.data.Options:
    """Order, and tf.data's autotuner off.

    Evaluation keeps file order. Uncached training takes whichever batch is ready first; a cache is
    filled in order, so a seeded run sees the same batches every time (what is cached is decoded once,
    so order costs nothing later).

    With the autotuner off, `AUTOTUNE` parallelism means one call per core, which is what a CPU-bound
    decode wants anyway.
    Keras makes a new iterator every epoch (training) and every validation pass, and destroying one
    waits for the autotuner's background thread: 20-65 ms most times, ~0.6 s now and then, and one
    epoch in ten of a small cnn took ~2.4 s instead of ~1.1 s. With the autotuner off, the same fit ran
    at 1.04-1.25 s every epoch and first-epoch decoding was as fast (BENCHMARKS.md)."""
    options = tf.data.Options()
    options.deterministic = deterministic
    options.autotune.enabled = False
    return options


def cache_fits_in_memory(n_images: int, size: tuple[int, int], channels: int, fraction: float = 0.25) -> bool:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return n_images * size[0] * size[1] * channels <= fraction * total


def make_dataset(paths, labels, num_classes: int, *, size: tuple[int, int], channels: int, resize: str = "stretch",
                 batch_size: int = 32, training: bool = False, seed: int = 0, cache: str = "none",
                 cache_dir: str | None = None, shuffle_buffer: int = 10000, use_pil=None, augment=None,
                 drop_remainder: bool = False, background=alpha.DEFAULT) -> tf.data.Dataset:
    """Paths and integer labels -> batched `(uint8 images (B,H,W,C), one-hot labels (B,K))`; `num_classes=0`:
    labels are a numeric target, batched as float32 (B, 1) (image regression).

    `background`: the colour transparent pixels are composited onto (the spec's `alpha_background`)."""
    paths = np.asarray(paths, dtype=str)
    labels = np.asarray(labels, dtype=np.float32 if num_classes == 0 else np.int32)
    use_pil = np.zeros(len(paths), bool) if use_pil is None else np.asarray(use_pil, bool)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels, use_pil))
    if training and not caches(cache, cache_dir):
        # Shuffle file names before decoding: cheap, and the buffer holds strings, not pixels.
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return decode_in_batches(
        ds,
        lambda p, y, u: (decode_batch_op(p, u, size, channels, resize, files=True, background=background),
                         tf.one_hot(y, num_classes) if num_classes else tf.expand_dims(y, -1)),
        n=len(paths), batch_size=batch_size, training=training, seed=seed, cache=cache, cache_dir=cache_dir,
        shuffle_buffer=shuffle_buffer, augment=augment, drop_remainder=drop_remainder)
