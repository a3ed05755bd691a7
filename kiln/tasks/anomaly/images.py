"""Images for the anomaly task: a folder of images (any depth). The first sub-folder of an image names its class;
the class `anomaly` (`anomaly_label=`) marks anomalies, every other class (or no sub-folder) is normal. Images are
read with Pillow, converted to RGB (`channels=3`) or grey (`channels=1`) and resized to `image_size` square, kept
in memory as uint8; the model scales them inside (raw pixels in, as exported and served)."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.errors import DataError, received

log = logging.getLogger("kiln.anomaly")
DEFAULT_ANOMALY = "anomaly"


def suffixes() -> set[str]:
    from kiln.tasks.image.data.sources import IMAGE_SUFFIXES

    return IMAGE_SUFFIXES


def list_images(root, component: str) -> pd.DataFrame:
    """path, class (first sub-folder, '' for images at the top) of every image file under `root`, sorted."""
    root = Path(root).expanduser()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes())
    if not files:
        raise DataError(received(component, "data", root, "no images were found", "Put the normal images in the folder (sub-folders allowed)"))
    return pd.DataFrame({"path": [str(p) for p in files],
                         "class": [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "" for p in files]})


def image_flags(frame: pd.DataFrame, anomaly_label: str | None, component: str) -> np.ndarray:
    """1 for images of the anomaly class, 0 otherwise; a named class that no folder holds is an error."""
    want = anomaly_label or DEFAULT_ANOMALY
    hit = (frame["class"].str.lower() == want.lower()).to_numpy()
    if anomaly_label and not hit.any():
        seen = ", ".join(sorted(set(frame["class"]) - {""})[:8]) or "none"
        raise DataError(received(component, "anomaly_label", anomaly_label, f"no sub-folder is named so (classes: {seen})",
                                 "Pass anomaly_label= one of them, or put the anomalous images in DATA/anomaly/"))
    return hit.astype(np.int64)


def to_pixels(image, size: int, channels: int) -> np.ndarray:
    """A PIL image -> (size, size, channels) uint8."""
    from PIL import Image

    img = image.convert("RGB" if channels == 3 else "L").resize((size, size), Image.BILINEAR)
    a = np.asarray(img, np.uint8)
    return a[:, :, None] if channels == 1 else a


def load(paths, size: int, channels: int, component: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (N, size, size, channels) uint8, readable mask (N,)); unreadable files are left out and counted."""
    from PIL import Image, UnidentifiedImageError

    out, ok = np.zeros((len(paths), size, size, channels), np.uint8), np.ones(len(paths), bool)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as img:
                out[i] = to_pixels(img, size, channels)
        except (OSError, UnidentifiedImageError, ValueError):
            ok[i] = False
    if not ok.all():
        log.warning("%s: %d image(s) could not be read and are left out (e.g. %s)", component, int((~ok).sum()), paths[int(np.argmin(ok))])
    return out, ok


def decode(item, size: int, channels: int) -> np.ndarray:
    """A served instance: {"b64": encoded image file} or nested pixel lists (size x size [x channels]) -> pixels."""
    from PIL import Image

    if isinstance(item, dict) and "b64" in item:
        with Image.open(io.BytesIO(base64.b64decode(item["b64"]))) as img:
            return to_pixels(img, size, channels)
    a = np.asarray(item)
    if a.ndim == 2 and channels == 1:
        a = a[:, :, None]
    if a.shape != (size, size, channels):
        raise ValueError(f"expected an image {{\"b64\": ...}} or pixels of shape [{size}, {size}, {channels}], got {list(a.shape)}")
    if a.min() < 0 or a.max() > 255:
        raise ValueError("pixels must lie in 0-255")
    return a.astype(np.uint8)


__all__ = ["decode", "image_flags", "list_images", "load", "to_pixels"]
