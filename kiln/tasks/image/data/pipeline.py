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

import io
import os

import cv2
import numpy as np
import simplejpeg
import tensorflow as tf

from kiln.tasks.image.data import alpha

AUTOTUNE = tf.data.AUTOTUNE
PREFETCH = 2  # batches ready ahead of the consumer (the parallel decode keeps its own in flight too)
OPENCV_MAGIC = (b"\x89PNG", b"BM", b"RIFF")  # PNG, BMP, WebP: OpenCV decodes these (16-bit PNGs scaled to 8 bits)


JPEG_COLORSPACES = {1: "GRAY", 3: "RGB", 4: "RGBA"}  # a JPEG has no alpha: RGBA gets 255


def _decode(data: bytes, channels: int, size: tuple[int, int] | None, background=None) -> np.ndarray:
    """Encoded bytes -> (H, W, channels) uint8. GIF (first frame), anything that may be transparent
    (`alpha.may_have_alpha`, or channels=4) and anything unusual go to Pillow.

    A JPEG larger than `size` is decoded at a reduced scale (libjpeg's M/8 DCT scaling) that still
    covers `size`: a 12-megapixel photo bound for 224 px costs a fraction of a full decode."""
    if data[:3] == b"\xff\xd8\xff":
        h, w = size or (0, 0)
        try:
            image = simplejpeg.decode_jpeg(data, colorspace=JPEG_COLORSPACES[channels], min_height=h, min_width=w)
        except ValueError:  # a recoverable libjpeg warning (e.g. extra bytes): Pillow accepts it as the audit did
            image = _pil_load(io.BytesIO(data), channels, background)
    elif data.startswith(OPENCV_MAGIC) and channels != 4 and not (background is not None and alpha.may_have_alpha(data)):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR_RGB)
        if image is None:
            image = _pil_load(io.BytesIO(data), channels, background)
    else:
        image = _pil_load(io.BytesIO(data), channels, background)
    return image.reshape(*image.shape[:2], channels)


def resize_array(image: np.ndarray, size: tuple[int, int], mode: str, out: np.ndarray | None = None) -> np.ndarray:
    """(H, W, C) uint8 -> (h, w, C) uint8 with OpenCV's bilinear resize (half-pixel centres, as TF's).

    stretch: to size; pad: fit inside and pad with black, centred; crop: cover and centre-crop.
    OpenCV resizes uint8 with SIMD and releases the GIL: about 3x cheaper than TF's float resize.
    With `out` ((h, w, C), contiguous), the result is written there (stretch resizes straight into it).
    """
    h, w = size
    ih, iw, channels = image.shape
    if mode == "stretch" and out is not None and (ih, iw) != (h, w):
        cv2.resize(image, (w, h), dst=out.reshape(h, w) if channels == 1 else out, interpolation=cv2.INTER_LINEAR)
        return out
    if mode == "stretch":
        nh, nw = h, w
    else:
        scale = max(h / ih, w / iw) if mode == "crop" else min(h / ih, w / iw)
        nh = max(1, int(np.ceil(ih * scale - 1e-6)) if mode == "crop" else int(ih * scale + 1e-6))
        nw = max(1, int(np.ceil(iw * scale - 1e-6)) if mode == "crop" else int(iw * scale + 1e-6))
    res = image if (nh, nw) == (ih, iw) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    res = res.reshape(nh, nw, channels)
    if mode == "crop":
        top, left = (nh - h) // 2, (nw - w) // 2
        res = res[top:top + h, left:left + w]
    elif mode == "pad":
        canvas = np.zeros((h, w, channels), np.uint8)
        top, left = (h - nh) // 2, (w - nw) // 2
        canvas[top:top + nh, left:left + nw] = res
        res = canvas
    if out is None:
        return np.ascontiguousarray(res)
    out[...] = res
    return out


def _pil_load(source, channels: int, background=alpha.DEFAULT) -> np.ndarray:
    """Pillow decode of a path or file object: first frame, EXIF rotation applied, transparency composited
    onto `background` (an (r, g, b) or a colour name; None drops alpha), as L, RGB or RGBA (channels=4)."""
    from PIL import Image, ImageOps

    with Image.open(source.decode() if isinstance(source, bytes) else source) as img:
        img.seek(0)
        img = ImageOps.exif_transpose(img)
        return alpha.flatten(img, _rgb(background), channels)


def _rgb(background):
    return alpha.background_rgb(background) if isinstance(background, str) else background


def decode_bytes(data: bytes, size: tuple[int, int], channels: int, resize: str, use_pil: bool = False,
                 out: np.ndarray | None = None, background=alpha.DEFAULT) -> np.ndarray:
    """Encoded image bytes -> (H, W, C) uint8 at `size`: the one decode + resize every path uses.

    `use_pil` (splits.csv's column): the file needs Pillow (EXIF orientation, a format only Pillow reads).
    `background` (the run's `alpha_background`): the colour transparent pixels are composited onto."""
    background = _rgb(background)
    image = _pil_load(io.BytesIO(data), channels, background) if use_pil else _decode(data, channels, size, background)
    return resize_array(image, tuple(size), resize, out)


def decode_batch(blobs, size: tuple[int, int], channels: int, resize: str, use_pil=None, *, files: bool = False,
                 background=alpha.DEFAULT) -> np.ndarray:
    """N encoded images (or N file paths with `files=True`) -> (N, H, W, C) uint8."""
    out = np.empty((len(blobs), *size, channels), np.uint8)
    for i, item in enumerate(blobs):
        try:
            if files:
                with open(item, "rb") as fh:
                    item = fh.read()
            decode_bytes(item, size, channels, resize, bool(use_pil[i]) if use_pil is not None else False, out[i],
                         background)
        except Exception as err:  # a file changed or removed since the audit: name it
            where = os.fsdecode(blobs[i]) if files else f"image {i} of the batch"
            raise ValueError(f"{where} could not be decoded: {err}") from err
    return out


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
