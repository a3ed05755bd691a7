"""Transparency: composite transparent pixels onto a background, as every image viewer shows them.

The colour under a fully transparent pixel is arbitrary (icon themes store black, some editors white
or leftovers), so dropping alpha can turn a glyph drawn in the alpha channel into a blank image.
Kiln composites onto `data.alpha_background` (white by default; any colour Pillow names, "black",
"#808080", "rgb(0,128,255)") in training, evaluation, export parity data, the server and the audit's
thumbnails; `channels=4` keeps alpha as a fourth channel instead (RGBA, nothing composited).

NumPy and Pillow only: the audit's worker processes use it without importing TensorFlow.

    rgb = flatten(Image.open("icon.png"), background_rgb("white"), channels=3)  # (H, W, 3) uint8
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

DEFAULT = "white"
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


@lru_cache(maxsize=64)
def background_rgb(value: str | None) -> tuple[int, int, int] | None:
    """A colour name or code -> (r, g, b); None stays None (a run saved before Kiln composited drops alpha).

    Raises ValueError for a colour Pillow does not know."""
    if value is None:
        return None
    from PIL import ImageColor

    rgb = ImageColor.getrgb(str(value).strip())
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def to_hex(value: str) -> str:
    """The canonical "#rrggbb" form saved in run.json, so serving composites onto the same colour."""
    return "#%02x%02x%02x" % background_rgb(value)


def has_alpha(img) -> bool:
    """Whether a Pillow image carries transparency (an alpha channel or a transparent palette or colour key)."""
    return img.mode in ALPHA_MODES or "transparency" in img.info


def flatten(img, background: tuple[int, int, int] | None, channels: int) -> np.ndarray:
    """A Pillow image -> (H, W, channels) uint8 as Kiln feeds it.

    channels 4: RGBA as stored (opaque images get alpha 255). Otherwise transparent pixels are
    composited onto `background` (out = rgb * a + background * (1 - a), rounded) before converting
    to L or RGB; `background=None` drops alpha (how runs saved before compositing were trained)."""
    from PIL import Image

    if channels == 4:
        return np.asarray(img.convert("RGBA"), dtype=np.uint8)
    mode = "L" if channels == 1 else "RGB"
    if background is None or not has_alpha(img):
        arr = np.asarray(img.convert(mode), dtype=np.uint8)
        return arr[..., None] if channels == 1 else arr
    rgb = composite(np.asarray(img.convert("RGBA"), dtype=np.uint8), background)
    if channels == 1:
        return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint8)[..., None]
    return rgb


def composite(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """(H, W, 4) uint8 -> (H, W, 3) uint8 over an opaque background, in integers (the same on every CPU)."""
    a = rgba[..., 3:].astype(np.uint32)
    bg = np.asarray(background, np.uint32)
    return ((rgba[..., :3].astype(np.uint32) * a + bg * (255 - a) + 127) // 255).astype(np.uint8)


def may_have_alpha(data: bytes) -> bool:
    """From the header alone: whether an encoded PNG, WebP or BMP may be transparent (then Pillow decodes it).

    PNG: colour type with alpha, or a tRNS chunk before the pixel data; WebP: the extended header's
    alpha flag or a lossless bitstream's alpha bit; BMP: 32 bits per pixel."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) > 25 and data[25] in (4, 6):
            return True
        idat = data.find(b"IDAT")
        return data.find(b"tRNS", 0, idat if idat > 0 else len(data)) > 0
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunk = data[12:16]
        if chunk == b"VP8X":
            return len(data) > 20 and bool(data[20] & 0x10)
        if chunk == b"VP8L":
            return len(data) > 24 and bool((int.from_bytes(data[21:25], "little") >> 28) & 1)
        return False
    if data[:2] == b"BM":
        return len(data) > 29 and int.from_bytes(data[28:30], "little") == 32
    return False


def alpha_facts(img, background: tuple[int, int, int]) -> dict:
    """For the audit: how much of a transparent image's picture lives in its alpha channel.

    `rgb_std`: spread of the colour under the alpha (0 when it is one colour, as in symbolic icons);
    `alpha_std`: spread of the alpha; `flat_std`: spread of what the model sees once composited."""
    rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
    if rgba.size > 256 * 256 * 4:  # a strided sample is enough for a spread
        step = int(np.ceil(np.sqrt(rgba.shape[0] * rgba.shape[1] / 65536)))
        rgba = rgba[::step, ::step]
    flat = composite(rgba, background)
    return {"rgb_std": round(float(rgba[..., :3].std(axis=(0, 1)).max()), 2),
            "alpha_std": round(float(rgba[..., 3].std()), 2),
            "flat_std": round(float(flat.std(axis=(0, 1)).max()), 2)}
