"""Transparent test images: a glyph over fully transparent pixels whose hidden colour is black, white or random.

Every image is 16x16: outside the glyph alpha is 0 (the hidden colour there varies), the glyph
(rows/cols 4-11) is opaque GLYPH, and a half-transparent band (rows 12-13, cols 4-11) has alpha 128
over GLYPH (RGBA and LA only: palettes have one transparent index).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

GLYPH = (200, 30, 30)
GLYPH_GREY = 60
UNDER = ("black", "white", "random")
KINDS = ("rgba_png", "la_png", "palette_png", "gif", "rgba_webp")


def _hidden(under: str, shape, seed: int = 0) -> np.ndarray:
    if under == "black":
        return np.zeros(shape, np.uint8)
    if under == "white":
        return np.full(shape, 255, np.uint8)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def glyph_mask() -> np.ndarray:
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    return mask


def transparent(kind: str, under: str) -> bytes:
    """Encoded bytes of one test image (see the module docstring)."""
    inside = glyph_mask()
    buf = io.BytesIO()
    if kind in ("rgba_png", "rgba_webp"):
        rgb = _hidden(under, (16, 16, 3))
        rgb[inside] = GLYPH
        a = np.where(inside, 255, 0).astype(np.uint8)
        rgb[12:14, 4:12], a[12:14, 4:12] = GLYPH, 128
        img = Image.fromarray(np.dstack([rgb, a]), "RGBA")
        img.save(buf, "WEBP", lossless=True, exact=True) if kind == "rgba_webp" else img.save(buf, "PNG")
    elif kind == "la_png":
        grey = _hidden(under, (16, 16))
        grey[inside] = GLYPH_GREY
        a = np.where(inside, 255, 0).astype(np.uint8)
        grey[12:14, 4:12], a[12:14, 4:12] = GLYPH_GREY, 128
        Image.fromarray(np.dstack([grey, a]), "LA").save(buf, "PNG")
    else:  # palette: index 0 is transparent (its colour is the hidden one), index 1 the glyph
        hidden = _hidden(under, (3,), seed=1)
        img = Image.fromarray(np.where(inside, 1, 0).astype(np.uint8), "P")
        img.putpalette([*hidden.tolist(), *GLYPH] + [0, 0, 0] * 254)
        img.save(buf, "GIF" if kind == "gif" else "PNG", transparency=0)
    return buf.getvalue()


def expected(kind: str, background: tuple[int, int, int]) -> np.ndarray:
    """(16, 16, 3) uint8: what a viewer shows over `background`."""
    glyph = np.array((GLYPH_GREY,) * 3 if kind == "la_png" else GLYPH, np.float64)
    out = np.empty((16, 16, 3))
    out[:] = background
    out[glyph_mask()] = glyph
    if kind in ("rgba_png", "la_png", "rgba_webp"):
        out[12:14, 4:12] = (glyph * 128 + np.array(background) * 127) / 255
    return np.round(out).astype(np.uint8)
