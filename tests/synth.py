"""Generated image datasets for tests and benchmarks: classes differ by a drawn shape, so they are learnable.

Class c draws shape c % 4 (horizontal bar, vertical bar, square, diagonal) in colour c over noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = [(230, 40, 40), (40, 200, 60), (50, 80, 230), (230, 200, 40), (200, 60, 220), (40, 210, 210)]


def draw(c: int, size: int | tuple[int, int], rng: np.random.Generator, channels: int = 3) -> np.ndarray:
    """One (H, W, 3) uint8 image of class `c`."""
    h, w = (size, size) if isinstance(size, int) else size
    img = rng.integers(0, 70, (h, w, 3), dtype=np.uint8)
    colour = np.array(COLOURS[c % len(COLOURS)], np.uint8)
    jy, jx = rng.integers(-h // 10, h // 10 + 1), rng.integers(-w // 10, w // 10 + 1)
    shape = c % 4
    if shape == 0:
        img[max(0, h // 2 - h // 8 + jy):h // 2 + h // 8 + jy, w // 8:w - w // 8] = colour
    elif shape == 1:
        img[h // 8:h - h // 8, max(0, w // 2 - w // 8 + jx):w // 2 + w // 8 + jx] = colour
    elif shape == 2:
        img[max(0, h // 4 + jy):3 * h // 4 + jy, max(0, w // 4 + jx):3 * w // 4 + jx] = colour
    else:
        for i in range(min(h, w)):
            img[i, max(0, i - w // 10):i + w // 10] = colour
    if channels == 1:
        img = np.repeat(np.asarray(Image.fromarray(img).convert("L"))[..., None], 3, axis=2)
    return img


def make_image_folder(root: str | Path, classes: int = 3, per_class: int = 30, size: int | tuple[int, int] = 32,
                      fmt: str = "png", seed: int = 0, names: list[str] | None = None, grey: bool = False,
                      presplit: dict[str, int] | None = None) -> Path:
    """ROOT/<class>/<i>.<fmt> (or ROOT/<split>/<class>/... when presplit={'train': n, 'val': n, ...})."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = names or [f"class_{chr(97 + c)}" for c in range(classes)]
    splits = presplit or {None: per_class}
    for split, n in splits.items():
        for c, name in enumerate(names):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = Image.fromarray(draw(c, size, rng))
                if grey:
                    img = img.convert("L")
                img.save(folder / f"{i:04d}.{fmt}", quality=92) if fmt in ("jpg", "jpeg") else img.save(folder / f"{i:04d}.{fmt}")
    return root


def random_shapes(n: int, size: int = 64, seed: int = 0) -> list[Image.Image]:
    """Distinct but similar pictures: a solid ellipse, square or triangle of random colour, size and
    position on a noisy background of another random colour (no two are copies of each other)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        background = rng.integers(0, 256, 3)
        img = Image.fromarray(np.clip(background + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8))
        pen = ImageDraw.Draw(img)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        r = int(rng.integers(size // 6, size // 3))
        cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
        box = [cx - r, cy - r, cx + r, cy + r]
        if i % 3 == 0:
            pen.ellipse(box, fill=colour)
        elif i % 3 == 1:
            pen.rectangle(box, fill=colour)
        else:
            pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
        out.append(img)
    return out


def make_value_images(root: str | Path, n: int = 48, size: int = 16, seed: int = 0, column: str = "brightness") -> Path:
    """ROOT/img/<i>.png whose mean brightness is the target, and ROOT/data.csv `path,<column>` (image regression)."""
    root = Path(root)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = [f"path,{column}"]
    for i in range(n):
        v = float(rng.uniform(0, 1))
        pixels = rng.normal(20 + 200 * v, 12, (size, size, 3)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / "img" / f"{i}.png")
        lines.append(f"img/{i}.png,{10 * v:.4f}")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root / "data.csv"
