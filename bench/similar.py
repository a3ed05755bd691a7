"""Near-duplicate precision and recall of `kiln audit` on generated distinct-but-similar images plus copies.

Distinct images (none of them is a copy of another):
- shapes: solid ellipses, squares and triangles of random colour, size and position on noisy
  backgrounds of another random colour (64 px PNG);
- digits8: scikit-learn's 1,797 digits as 8x8 PNGs (what `kiln demo` audits);
- digits32: the same digits as 32x32 PNGs (nearest-neighbour upscale).

Copies of some of them, each a transformation the audit must still find: JPEG quality 85, 2x upscale
(bicubic), a 10 % centre crop, a 10 % corner crop (saved as JPEG 90), PNG -> JPEG (quality 95),
JPEG -> PNG, and a 50 % downscale saved as JPEG 85 (harder than the issue asks).

A pair counts as found when the audit puts both files in one duplicate group. Precision over all
pairs the audit reports; recall per transformation; `hash only` is the audit before confirmation
(whole-image perceptual hash within 4 bits).

    .venv/bin/python bench/similar.py [--copies 40] [--shapes 400]
"""

from __future__ import annotations

import argparse
import io
import itertools
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA  # noqa: E402

TRANSFORMS = ("jpeg85", "upscale2x", "crop10_centre", "crop10_corner", "png_to_jpeg", "jpeg_to_png", "half_jpeg85")


def shapes(n: int, size: int = 64, seed: int = 0) -> list[Image.Image]:
    from synth import random_shapes  # tests/synth.py, on the path through bench/common.py

    return random_shapes(n, size, seed)


def digits(side: int) -> list[Image.Image]:
    from sklearn.datasets import load_digits

    images = np.round(load_digits().images * (255.0 / 16.0)).astype(np.uint8)
    return [Image.fromarray(im, "L").resize((side, side), Image.NEAREST) for im in images]


def _bytes(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def copy_of(img: Image.Image, kind: str) -> tuple[bytes, str]:
    """(encoded copy, extension) of one transformation."""
    w, h = img.size
    dx, dy = max(1, round(w * 0.1)), max(1, round(h * 0.1))
    if kind == "jpeg85":
        return _bytes(img, "JPEG", quality=85), "jpg"
    if kind == "upscale2x":
        return _bytes(img.resize((2 * w, 2 * h), Image.BICUBIC), "PNG"), "png"
    if kind == "crop10_centre":
        return _bytes(img.crop((dx // 2, dy // 2, w - (dx - dx // 2), h - (dy - dy // 2))), "PNG"), "png"
    if kind == "crop10_corner":
        return _bytes(img.crop((dx, dy, w, h)), "JPEG", quality=90), "jpg"
    if kind == "png_to_jpeg":
        return _bytes(img, "JPEG", quality=95), "jpg"
    if kind == "jpeg_to_png":  # the original is stored as a JPEG for this one (see build)
        return _bytes(Image.open(io.BytesIO(_bytes(img, "JPEG", quality=90))), "PNG"), "png"
    if kind == "half_jpeg85":
        return _bytes(img.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS), "JPEG", quality=85), "jpg"
    raise ValueError(kind)


def build(root: Path, name: str, images: list[Image.Image], copies: int, seed: int = 0) -> tuple[dict, dict]:
    """root/<name>/<class>/...: every image, plus copies of the first `copies` ones (one transformation each,
    cycling). Returns ({path: original id}, {copy path: transformation})."""
    folder = root / name
    rng = np.random.default_rng(seed)
    origin, kinds = {}, {}
    for i, img in enumerate(images):
        label = folder / f"c{i % 3}"
        label.mkdir(parents=True, exist_ok=True)
        kind = TRANSFORMS[i % len(TRANSFORMS)] if i < copies else None
        if kind == "jpeg_to_png":
            path = label / f"{i:04d}.jpg"
            path.write_bytes(_bytes(img, "JPEG", quality=90))
        else:
            path = label / f"{i:04d}.png"
            img.save(path)
        origin[str(path)] = i
        if kind:
            data, ext = copy_of(img, kind)
            where = label if rng.random() < 0.8 else folder / f"c{(i + 1) % 3}"  # some copies under another label
            copy = where / f"{i:04d}_{kind}.{ext}"
            copy.write_bytes(data)
            origin[str(copy)] = i
            kinds[str(copy)] = kind
    return origin, kinds


def pairs_of(groups: list[list[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for g in groups for p in itertools.combinations(g, 2)}


def hash_only(paths: list[str], distance: int = 4) -> set[tuple[str, str]]:
    """The audit before this change: whole-image perceptual hash within `distance`, nothing confirmed."""
    import imagehash

    from kiln.tasks.image.data.similar import near_pairs

    hashes = np.array([int(str(imagehash.phash(Image.open(p).convert("RGB"))), 16) for p in paths], dtype=np.uint64)
    return {tuple(sorted((paths[a], paths[b]))) for a, b in near_pairs(hashes, distance)}


def score(name: str, origin: dict, kinds: dict, found: set) -> dict:
    truth = {tuple(sorted(p)) for p in itertools.combinations(origin, 2) if origin[p[0]] == origin[p[1]]}
    tp = len(found & truth)
    row = {"set": name, "files": len(origin), "copies": len(kinds), "reported": len(found), "false": len(found - truth),
           "precision": tp / len(found) if found else 1.0, "recall": tp / len(truth) if truth else 1.0}
    for kind in TRANSFORMS:
        mine = [p for p in truth if any(kinds.get(x) == kind for x in p)]
        row[kind] = (sum(p in found for p in mine), len(mine))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=400)
    parser.add_argument("--copies", type=int, default=70, help="copies per set (10 per transformation)")
    parser.add_argument("--distance", type=int, default=None, help="near_distance (default: the audit's)")
    parser.add_argument("--difference", type=float, default=None, help="near_difference (default: the audit's)")
    args = parser.parse_args()

    from kiln.tasks.image.data.audit import AuditOptions, audit

    root = DATA / "similar"
    shutil.rmtree(root, ignore_errors=True)
    sets = {"shapes": shapes(args.shapes), "digits8": digits(8), "digits32": digits(32)}
    options = {"min_side": 8, "workers": 1}
    if args.distance is not None:
        options["near_distance"] = args.distance
    if args.difference is not None:
        options["near_difference"] = args.difference
    print(f"options: {AuditOptions(**options).model_dump()}")
    rows = []
    for name, images in sets.items():
        origin, kinds = build(root, name, images, args.copies)
        started = time.perf_counter()
        report = audit(root / name, options=options, progress=False, write=False)
        seconds = time.perf_counter() - started
        groups = [g for g in report["duplicates"]]
        rows.append({**score(name, origin, kinds, pairs_of(groups)), "seconds": seconds})
        rows.append({**score(name + " (hash only)", origin, kinds, hash_only(list(origin))), "seconds": float("nan")})
        worst = sorted((g["difference"], g["paths"]) for g in report["duplicate_groups"] if not g["exact"])[-3:]
        print(f"{name}: largest confirmed differences {[(d, [Path(p).name for p in ps]) for d, ps in worst]}")
    head = ["set", "files", "copies", "reported pairs", "false pairs", "precision", "recall", *TRANSFORMS, "audit s"]
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        cells = [r["set"], r["files"], r["copies"], r["reported"], r["false"], f"{r['precision']:.3f}", f"{r['recall']:.3f}",
                 *[f"{r[k][0]}/{r[k][1]}" for k in TRANSFORMS], "" if r["seconds"] != r["seconds"] else f"{r['seconds']:.1f}"]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
