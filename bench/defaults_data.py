"""Datasets for bench/defaults.py: made here or shipped inside scikit-learn, never downloaded.

Each dataset is split 50/50, stratified and seeded, into `NAME/train/<class>/*.png` (what `kiln train
data=...` gets) and `NAME/heldout/<class>/*.png` (what every model is scored on). The generators are
deliberately different in kind: real handwriting upscaled, colour shapes on noisy coloured backgrounds,
grey periodic textures, a long-tailed class balance, large images and tiny ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def digits(rng):
    """scikit-learn's 1,797 digits (8x8, 17 grey levels) written as 32x32 PNGs, as the issue's check does."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = [np.asarray(Image.fromarray(np.round(im * 255 / 16).astype(np.uint8), "L").resize((32, 32), Image.BICUBIC))
              for im in d.images]
    return images, d.target.tolist(), d.images.reshape(len(d.images), -1)  # the raw 8x8 pixels for the SVC


def _background(size, rng, colour=True):
    base = rng.integers(0, 256, 3 if colour else 1)
    noise = rng.normal(0, 28, (size, size, 3 if colour else 1))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _shape(draw, kind, cx, cy, r, fill):
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    elif kind == "cross":
        w = max(1, r // 3)
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(1, r // 3))


SHAPES = ("circle", "square", "triangle", "cross", "ring")


def shapes(rng, n_per_class=(240,) * 5, size=64, kinds=SHAPES):
    """A solid shape of random colour, size and position on a noisy background of another random colour;
    the class is the shape, never the colour."""
    images, labels = [], []
    for c, n in enumerate(n_per_class):
        for _ in range(n):
            img = Image.fromarray(_background(size, rng))
            r = int(rng.uniform(0.18, 0.32) * size)
            cx, cy = rng.integers(r + 1, size - r - 1, 2)
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            _shape(ImageDraw.Draw(img), kinds[c], int(cx), int(cy), r, fill)
            images.append(np.asarray(img))
            labels.append(c)
    return images, labels, None


def textures(rng, n_per_class=200, size=32):
    """Grey periodic patterns with random phase, frequency and contrast under noise: stripes at four
    orientations, a checkerboard and dots. The class is the pattern, wherever it sits."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images, labels = [], []
    for c in range(6):
        for _ in range(n_per_class):
            f = rng.uniform(0.25, 0.5) * 2 * np.pi / 3  # a period of about 6-12 px
            p = rng.uniform(0, 2 * np.pi, 2)
            if c < 4:  # stripes at 0, 45, 90, 135 degrees (+- 8)
                a = np.deg2rad(45 * c + rng.uniform(-8, 8))
                z = np.sin(f * (np.cos(a) * xx + np.sin(a) * yy) + p[0])
            elif c == 4:
                z = np.sign(np.sin(f * xx + p[0]) * np.sin(f * yy + p[1]))
            else:
                z = (np.sin(f * xx + p[0]) * np.sin(f * yy + p[1]) > 0.5) * 2.0 - 1
            contrast, mean = rng.uniform(30, 90), rng.uniform(90, 170)
            img = mean + contrast * z + rng.normal(0, 30, z.shape)
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(c)
    return images, labels, None


GLYPHS = [  # 5x5 strokes: plus, x, L, T, O, H
    ["..#..", "..#..", "#####", "..#..", "..#.."],
    ["#...#", ".#.#.", "..#..", ".#.#.", "#...#"],
    ["#....", "#....", "#....", "#....", "#####"],
    ["#####", "..#..", "..#..", "..#..", "..#.."],
    [".###.", "#...#", "#...#", "#...#", ".###."],
    ["#...#", "#...#", "#####", "#...#", "#...#"],
]


def tiny(rng, n_per_class=400, size=12):
    """Tiny grey glyphs (5x5 strokes scaled 1-2x) at a random place, with random ink and paper levels and noise."""
    images, labels = [], []
    for c, glyph in enumerate(GLYPHS):
        g = np.array([[ch == "#" for ch in row] for row in glyph], np.float32)
        for _ in range(n_per_class):
            s = int(rng.integers(1, 3))
            mark = np.kron(g, np.ones((s, s), np.float32))
            paper, ink = rng.uniform(150, 255), rng.uniform(0, 100)
            img = np.full((size, size), paper, np.float32)
            y, x = rng.integers(0, size - mark.shape[0] + 1, 2)
            img[y:y + mark.shape[0], x:x + mark.shape[1]] -= mark * (paper - ink)
            img += rng.normal(0, 20, img.shape)
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(c)
    return images, labels, None


DATASETS = {
    # name: (generator, what it is); sizes keep the whole bench near half an hour on a loaded 2-core machine
    "digits": (digits, "scikit-learn digits, 8x8 grey upscaled to 32x32, 10 classes, 1,797 images"),
    "shapes32": (lambda rng: shapes(rng, (160,) * 5, 32), "colour shapes on noisy colour backgrounds, 32x32 RGB, 5 classes, 800 images"),
    "textures32": (lambda rng: textures(rng, 100), "grey stripes/checks/dots under noise, 32x32, 6 classes, 600 images"),
    "imbalanced32": (lambda rng: shapes(rng, (320, 160, 80, 40), 32, SHAPES[:4]),
                     "colour shapes 32x32 RGB, 4 classes of 320/160/80/40 images"),
    "shapes96": (lambda rng: shapes(rng, (80,) * 5, 96), "colour shapes 96x96 RGB, 5 classes, 400 images"),
    "tiny12": (lambda rng: tiny(rng), "grey glyphs 12x12, 6 classes, 2,400 images"),
}


def write(name: str, root: Path, seed: int = 0) -> Path:
    """Generate dataset `name` once into root/name/{train,heldout}/<class>/*.png (50/50 stratified)."""
    from sklearn.model_selection import train_test_split

    dest = root / name
    if (dest / ".complete").is_file():
        return dest
    rng = np.random.default_rng(seed)
    images, labels, raw = DATASETS[name][0](rng)
    idx = np.arange(len(images))
    tr, ho = train_test_split(idx, test_size=0.5, stratify=labels, random_state=seed)
    for split, part in (("train", tr), ("heldout", ho)):
        for i in part:
            folder = dest / split / f"c{labels[i]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(folder / f"{i:05d}.png")
    if raw is not None:  # features the classical peer gets instead of the PNG pixels (digits: the raw 8x8)
        y = np.asarray(labels)
        np.savez(dest / "raw.npz", train=raw[tr], heldout=raw[ho], train_y=y[tr], heldout_y=y[ho])
    (dest / ".complete").write_text("ok\n")
    return dest
