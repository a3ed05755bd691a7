"""Encoded image -> uint8 pixels at the model's size: the one decode + resize that training, evaluation,
TFRecord shards, the server and `kiln predict` through an ONNX export all use (NumPy, OpenCV, simplejpeg
and Pillow; no TensorFlow, so a prediction through an export never starts it). kiln/tasks/image/data/pipeline.py
wraps `decode_batch` in tf.data for training.
"""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
import simplejpeg

from kiln.tasks.image.data import alpha

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


