"""Request payloads -> uint8 `(N, H, W, C)` batches, or an `ApiError` with the status a client should see.

Encoded images are decoded and resized exactly as the training pipeline does (`decode_bytes`), so a
served prediction for a file equals `Run.predict` on the same file.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np


class ApiError(Exception):
    """A bad request: answered as `{"error": message}` with `status` (400, 401, 404, 413)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


TF_FORMATS = {"JPEG", "PNG", "GIF", "WEBP"}


def decode_image(data: bytes, spec, max_pixels: int) -> np.ndarray:
    """Encoded image bytes -> (H, W, C) uint8 at the model's input size."""
    from PIL import Image

    from kiln.data.pipeline import decode_bytes

    if not data:
        raise ApiError(400, "the image is empty (0 bytes)")
    Image.MAX_IMAGE_PIXELS = None  # our own max_pixels below is the limit that counts (as in kiln.data.check)
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height, fmt, frames = img.width, img.height, img.format, getattr(img, "n_frames", 1)
            if width * height > max_pixels:
                raise ApiError(413, f"the image has {width}x{height} = {width * height:,} pixels, over the server's "
                                    f"limit of {max_pixels:,}")
            try:
                orientation = int(img.getexif().get(0x0112, 1) or 1)
            except Exception:
                orientation = 1
    except ApiError:
        raise
    except Exception as err:
        from PIL import UnidentifiedImageError

        why = "not a known image format" if isinstance(err, UnidentifiedImageError) else \
            f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else 'unreadable'}"
        raise ApiError(400, f"the image could not be decoded ({why})") from None
    use_pil = orientation != 1 or fmt not in TF_FORMATS or (frames > 1 and fmt != "GIF")  # as kiln.data.check.needs_pil
    try:
        return decode_bytes(data, spec.size, spec.channels, spec.resize, use_pil=use_pil)
    except Exception as err:
        msg = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ApiError(400, f"the image could not be decoded ({msg})") from None


def b64_bytes(value, where: str) -> bytes:
    if isinstance(value, dict) and set(value) == {"b64"}:
        value = value["b64"]
    if not isinstance(value, str):
        raise ApiError(400, f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{where} is not valid base64") from None


def pixels(value, shape: tuple[int, int, int], where: str, batch: bool) -> np.ndarray:
    """Nested lists (or a flat list with `batch`=False handled by the caller) of 0-255 integers -> uint8 array.

    `batch`: the value is (N, H, W, C); else one image (H, W, C) (or (H, W) for one-channel models).
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise ApiError(400, f"{where} is not a rectangular array of pixel values") from None
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        raise ApiError(400, f"{where} must hold numbers (pixel values 0-255)")
    want = (arr.shape[0], *shape) if batch and arr.ndim >= 1 else shape
    if not batch and arr.ndim == 2 and shape[2] == 1:
        arr = arr[..., None]
    if arr.shape != tuple(want) or (batch and arr.shape[0] < 1):
        expect = f"[N, {shape[0]}, {shape[1]}, {shape[2]}]" if batch else f"[{shape[0]}, {shape[1]}, {shape[2]}]"
        raise ApiError(400, f"{where} has shape {list(arr.shape)}; this model takes {expect} uint8 pixels "
                            f"(or send encoded images)")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ApiError(400, f"{where} must hold whole pixel values 0-255")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ApiError(400, f"{where} holds values outside 0-255")
    return arr.astype(np.uint8)
