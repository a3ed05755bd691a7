"""The tf.data input pipeline: parallel decode + resize, optional cache, shuffle, batch, prefetch.

Images leave the pipeline as uint8 `(B, H, W, C)` raw pixels and one-hot labels; rescaling lives
inside the model. Augmentation (when configured) runs after the cache, on the CPU.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def _decode_jpeg(data: tf.Tensor, size: tuple[int, int] | None) -> tf.Tensor:
    """JPEG -> (H, W, 3), decoded at 1/2, 1/4 or 1/8 scale in the DCT domain when the image is still at
    least `size` afterwards: a large photo bound for 224 px costs a fraction of a full decode."""
    def at(ratio):
        # INTEGER_FAST is the libjpeg fast path; visually identical at training resolutions.
        return lambda: tf.io.decode_jpeg(data, channels=3, ratio=ratio, dct_method="INTEGER_FAST")

    if size is None:
        return at(1)()
    shape = tf.image.extract_jpeg_shape(data)  # header only
    fits = [tf.cast((shape[0] // r >= size[0]) & (shape[1] // r >= size[1]), tf.int32) for r in (2, 4, 8)]
    return tf.switch_case(tf.add_n(fits), [at(1), at(2), at(4), at(8)])


def _decode(data: tf.Tensor, channels: int, size: tuple[int, int] | None = None) -> tf.Tensor:
    """Any supported format -> (H, W, channels) uint8; GIF gives its first frame.

    With `size`, JPEGs may be decoded at a reduced scale that still covers `size` (see `_decode_jpeg`)."""
    is_jpeg = tf.strings.substr(data, 0, 3) == b"\xff\xd8\xff"
    image = tf.cond(
        is_jpeg,
        lambda: _decode_jpeg(data, size),
        lambda: tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8),
    )
    image.set_shape([None, None, 3])
    if channels == 1:
        image = tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), tf.uint8)
    return image


def resize_array(image: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """(H, W, C) uint8 -> (h, w, C) uint8 with OpenCV's bilinear resize (half-pixel centres, as TF's).

    stretch: to size; pad: fit inside and pad with black, centred; crop: cover and centre-crop.
    OpenCV resizes uint8 with SIMD and releases the GIL: about 3x cheaper than TF's float resize,
    which is what lets decode + resize run near the decode-only ceiling (bench/pipeline.py).
    """
    import cv2

    h, w = size
    ih, iw = image.shape[:2]
    channels = image.shape[2]
    if mode == "stretch":
        nh, nw = h, w
    else:
        scale = max(h / ih, w / iw) if mode == "crop" else min(h / ih, w / iw)
        nh = max(1, int(np.ceil(ih * scale - 1e-6)) if mode == "crop" else int(ih * scale + 1e-6))
        nw = max(1, int(np.ceil(iw * scale - 1e-6)) if mode == "crop" else int(iw * scale + 1e-6))
    out = image if (nh, nw) == (ih, iw) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = out.reshape(nh, nw, channels)
    if mode == "crop":
        top, left = (nh - h) // 2, (nw - w) // 2
        out = out[top:top + h, left:left + w]
    elif mode == "pad":
        canvas = np.zeros((h, w, channels), np.uint8)
        top, left = (h - nh) // 2, (w - nw) // 2
        canvas[top:top + nh, left:left + nw] = out
        out = canvas
    return np.ascontiguousarray(out)


def _resize(image: tf.Tensor, size: tuple[int, int], mode: str) -> tf.Tensor:
    """Graph wrapper of `resize_array` (one NumPy call per image inside tf.data)."""
    channels = image.shape[-1]
    out = tf.numpy_function(lambda a: resize_array(a, size, mode), [image], tf.uint8, stateful=False)
    out.set_shape([size[0], size[1], channels])
    return out


def _pil_load(path: bytes, channels: int) -> np.ndarray:
    """Fallback for files TF cannot orient: EXIF rotation applied by Pillow."""
    from PIL import Image, ImageOps

    with Image.open(path.decode() if isinstance(path, bytes) else path) as img:  # a path, or a file object (serve)
        img = ImageOps.exif_transpose(img)
        img.seek(0)
        img = img.convert("L" if channels == 1 else "RGB")
        arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if channels == 1 else arr


def load_image(path: tf.Tensor, size: tuple[int, int], channels: int, resize: str, use_pil: tf.Tensor | bool = False) -> tf.Tensor:
    """Read, decode and resize one file -> (H, W, C) uint8."""
    def tf_path():
        return _decode(tf.io.read_file(path), channels, size)

    def pil_path():
        img = tf.numpy_function(lambda p: _pil_load(p, channels), [path], tf.uint8)
        img.set_shape([None, None, channels])
        return img

    image = tf.cond(tf.convert_to_tensor(use_pil), pil_path, tf_path) if not isinstance(use_pil, bool) else (pil_path() if use_pil else tf_path())
    return _resize(image, size, resize)


def decode_bytes(data: bytes, size: tuple[int, int], channels: int, resize: str, use_pil: bool = False) -> np.ndarray:
    """Encoded image bytes -> (H, W, C) uint8: the decode + resize `load_image` gives the same file (serve uses it)."""
    if use_pil:
        import io

        return _resize(tf.constant(_pil_load(io.BytesIO(data), channels)), size, resize).numpy()
    return _bytes_decoder(tuple(size), channels, resize)(tf.constant(data)).numpy()


@functools.lru_cache(maxsize=16)
def _bytes_decoder(size: tuple[int, int], channels: int, resize: str):
    """One traced graph per image spec: a single call per image instead of a dozen eager ops."""
    return tf.function(lambda data: _resize(_decode(data, channels, size), size, resize),
                       input_signature=[tf.TensorSpec([], tf.string)])


def cache_fits_in_memory(n_images: int, size: tuple[int, int], channels: int, fraction: float = 0.25) -> bool:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return n_images * size[0] * size[1] * channels <= fraction * total


def make_dataset(paths, labels, num_classes: int, *, size: tuple[int, int], channels: int, resize: str = "stretch",
                 batch_size: int = 32, training: bool = False, seed: int = 0, cache: str = "none",
                 cache_dir: str | None = None, shuffle_buffer: int = 10000, use_pil=None, augment=None,
                 drop_remainder: bool = False) -> tf.data.Dataset:
    """Paths and integer labels -> batched `(uint8 images (B,H,W,C), one-hot labels (B,K))`."""
    paths = np.asarray(paths, dtype=str)
    labels = np.asarray(labels, dtype=np.int32)
    use_pil = np.zeros(len(paths), bool) if use_pil is None else np.asarray(use_pil, bool)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels, use_pil))
    if training and cache == "none":
        # Shuffle file names before decoding: cheap, and the buffer holds strings, not pixels.
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.deterministic = not training  # evaluation keeps file order; training takes whichever is ready
    ds = ds.with_options(options)
    ds = ds.map(lambda p, y, u: (load_image(p, size, channels, resize, u), tf.one_hot(y, num_classes)),
                num_parallel_calls=AUTOTUNE)
    if cache == "memory":
        ds = ds.cache()
    elif cache == "disk" and cache_dir:
        ds = ds.cache(cache_dir)
    if training and cache != "none":
        ds = ds.shuffle(min(shuffle_buffer, len(paths)), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    if augment is not None and training:
        ds = ds.map(augment, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
