"""Request payloads -> uint8 `(N, H, W, C)` batches, or an `ApiError` with the status a client should see.

Encoded images are decoded and resized exactly as the training pipeline does (`decode_bytes`), so a
served prediction for a file equals `Run.predict` on the same file.

A request only checks its images here (`check_image`: header, pixel limit, whether Pillow must decode
it); the other files stay encoded and are decoded with the rest of their micro-batch in the inference
thread (`BatchDecoder`), which gives the same pixels as one `decode_bytes` per file.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np

from kiln.serve.errors import ApiError
from kiln.tasks.image.data.check import DIRECT_FORMATS  # what training decodes without Pillow

__all__ = ["ApiError", "BatchDecoder", "b64_bytes", "check_image", "decode_image", "pixels", "prepare_images"]


def check_image(data: bytes, max_pixels: int) -> bool:
    """Read the header only: an ApiError for an empty, unknown or too-large image; True when Pillow must
    decode it (EXIF orientation, a format the fast decoders do not read), as training does."""
    from PIL import Image

    if not data:
        raise ApiError(400, "the image is empty (0 bytes)")
    Image.MAX_IMAGE_PIXELS = None  # our own max_pixels below is the limit that counts (as in kiln.tasks.image.data.check)
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height, fmt, frames = img.width, img.height, img.format, getattr(img, "n_frames", 1)
            if width * height > max_pixels:
                raise ApiError(413, f"the image has {width}x{height} = {width * height:,} pixels, over the server's "
                                    f"limit of {max_pixels:,}")
            try:
                orientation = int(_exif(img, data).get(0x0112, 1) or 1)
            except Exception:
                orientation = 1
    except ApiError:
        raise
    except Exception as err:
        from PIL import UnidentifiedImageError

        why = "not a known image format" if isinstance(err, UnidentifiedImageError) else \
            f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else 'unreadable'}"
        raise ApiError(400, f"the image could not be decoded ({why})") from None
    return orientation != 1 or fmt not in DIRECT_FORMATS or (frames > 1 and fmt != "GIF")  # as kiln.tasks.image.data.check.needs_pil


PNG_METADATA = (b"eXIf", b"tEXt", b"zTXt", b"iTXt")  # the chunks Pillow can find an orientation in


def _exif(img, data: bytes):
    """`img.getexif()` without decoding the pixels where that is sure to change nothing.

    A PNG's getexif decodes the whole image to reach chunks after the pixel data, unless the EXIF
    was before it. When no metadata chunk type occurs anywhere after the first IDAT, the header read
    by Image.open already holds every chunk that could carry an orientation."""
    from PIL import Image

    if img.format == "PNG" and "exif" not in img.info:
        at = data.find(b"IDAT")
        if at >= 0 and all(data.find(kind, at) < 0 for kind in PNG_METADATA):
            return Image.Image.getexif(img)
    return img.getexif()


def decode_image(data: bytes, spec, max_pixels: int) -> np.ndarray:
    """Encoded image bytes -> (H, W, C) uint8 at the model's input size."""
    use_pil = check_image(data, max_pixels)
    return _decode_one(data, spec, use_pil)


def _decode_one(data: bytes, spec, use_pil: bool, out: np.ndarray | None = None) -> np.ndarray:
    from kiln.tasks.image.data.pipeline import decode_bytes

    try:
        return decode_bytes(data, spec.size, spec.channels, spec.resize, use_pil=use_pil, out=out,
                            background=spec.alpha_background)
    except Exception as err:
        msg = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ApiError(400, f"the image could not be decoded ({msg})") from None


def prepare_images(blobs: list[bytes], spec, max_pixels: int) -> list:
    """Check each encoded image; one Pillow-only file is decoded now -> (H, W, C) uint8, the rest stay
    bytes for the micro-batch's `BatchDecoder`."""
    rows = []
    for data in blobs:
        rows.append(_decode_one(data, spec, True) if check_image(data, max_pixels) else data)
    return rows


class BatchDecoder:
    """A micro-batch's rows -> (n, H, W, C) uint8: encoded files through the training pipeline's decode + resize
    (`decode_bytes`), in one loop that releases the GIL while it decodes; (H, W, C) pixel rows copied as they are.
    The image adapter's `decode`: the batcher hands it every row of a micro-batch that requests left as rows.

    A bad file (its header looked fine) fails only its own request: `__call__` returns the pixels and
    {index: ApiError}."""

    def __init__(self, spec):
        self.spec = spec
        self.shape = (*tuple(spec.size), spec.channels)

    def __call__(self, rows: list) -> tuple[np.ndarray, dict[int, ApiError]]:
        out, failed = np.zeros((len(rows), *self.shape), np.uint8), {}
        for i, data in enumerate(rows):
            if not isinstance(data, (bytes, bytearray)):
                out[i] = data
                continue
            try:
                _decode_one(data, self.spec, False, out=out[i])
            except ApiError as err:
                failed[i] = err
        return out, failed


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
