"""kiln audit's near duplicates: copies (re-encoded, resized, cropped, PNG<->JPEG) are found; distinct but
similar pictures (random shapes on noisy backgrounds, scikit-learn's digits) are not."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synth import random_shapes

COPIES = {  # name -> (encoded copy of a 64 px picture, extension)
    "jpeg85": lambda im: (_enc(im, "JPEG", quality=85), "jpg"),
    "upscale2x": lambda im: (_enc(im.resize((128, 128), Image.BICUBIC), "PNG"), "png"),
    "crop10_centre": lambda im: (_enc(im.crop((3, 3, 61, 61)), "PNG"), "png"),
    "crop10_corner": lambda im: (_enc(im.crop((6, 6, 64, 64)), "JPEG", quality=90), "jpg"),
    "png_to_jpeg": lambda im: (_enc(im, "JPEG", quality=95), "jpg"),
}


def _enc(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def similar_folder(tmp_path_factory):
    """train/test folders: 90 distinct shapes and 600 distinct 8 px digits (both sets fooled the hash alone),
    plus copies of five shapes (one per transformation), a JPEG original re-saved as PNG, one copy under
    another label and one in the test split. Returns (root, expected groups as sets of relative paths)."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("similar") / "data"
    shapes = random_shapes(90, 64, seed=3)
    for i, img in enumerate(shapes):
        folder = root / "train" / f"shape{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:03d}.png") if i != 5 else img.save(folder / f"{i:03d}.jpg", quality=90)
    for i, image in enumerate(load_digits().images[:600]):
        folder = root / "train" / f"digit{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(image * (255.0 / 16.0)).astype(np.uint8), "L").save(folder / f"{i:04d}.png")
    groups = []
    for i, (name, make) in enumerate(COPIES.items()):
        data, ext = make(shapes[i])
        copy = f"train/shape{i % 3}/{i:03d}_{name}.{ext}"
        (root / copy).write_bytes(data)
        groups.append({f"train/shape{i % 3}/{i:03d}.png", copy})
    jpeg = root / "train" / "shape2" / "005.jpg"
    Image.open(jpeg).save(root / "train" / "shape2" / "005_as_png.png")
    groups.append({"train/shape2/005.jpg", "train/shape2/005_as_png.png"})
    (root / "train" / "shape0" / "006_relabelled.jpg").write_bytes(COPIES["jpeg85"](shapes[7])[0])  # 007 is shape1
    groups.append({"train/shape1/007.png", "train/shape0/006_relabelled.jpg"})
    (root / "test" / "shape2").mkdir(parents=True)
    (root / "test" / "shape2" / "leak.png").write_bytes(COPIES["crop10_centre"](shapes[8])[0])
    groups.append({"train/shape2/008.png", "test/shape2/leak.png"})
    return root, groups


@pytest.fixture(scope="module")
def similar_audit(similar_folder):
    from kiln.tasks.image.data.audit import audit

    root, _ = similar_folder
    return audit(root, options={"min_side": 8, "workers": 1}, progress=False, write=False)


def _rel(root: Path, paths) -> set[str]:
    return {str(Path(p).relative_to(root)) for p in paths}


def test_copies_found_and_similar_pictures_not(similar_folder, similar_audit):
    root, expected = similar_folder
    got = [_rel(root, g) for g in similar_audit["duplicates"]]
    assert sorted(map(sorted, got)) == sorted(map(sorted, expected))


def test_every_similarity_kind_says_how_close(similar_folder, similar_audit):
    root, _ = similar_folder
    by_kind: dict[str, list[dict]] = {}
    for p in similar_audit["problems"]:
        by_kind.setdefault(p["kind"], []).append(p)
    assert {p["kind"] for p in similar_audit["problems"]} >= {"near_duplicate", "label_conflict", "split_leak"}
    for kind in ("near_duplicate", "label_conflict", "split_leak"):
        for p in by_kind[kind]:
            assert "pixels differ by" in p["detail"] and "/255" in p["detail"], p
    crop = next(p for p in by_kind["near_duplicate"] if "crop10_corner" in p["path"])
    assert "covers 9" in crop["detail"], crop  # says one is a crop of the other
    for g in similar_audit["duplicate_groups"]:
        assert 0 <= g["difference"] <= 5.0 and not g["exact"]


def test_compare_tells_a_copy_from_a_similar_picture():
    from kiln.tasks.image.data import similar

    a, b = random_shapes(2, 64, seed=11)
    thumbs = {}
    for name, data in (("a", _enc(a, "PNG")), ("copy", COPIES["crop10_corner"](a)[0]), ("b", _enc(b, "PNG"))):
        path = io.BytesIO(data)
        thumbs[name] = similar.thumbnail(path)
    copy, other = similar.compare(thumbs["a"], thumbs["copy"]), similar.compare(thumbs["a"], thumbs["b"])
    assert copy.difference < similar.MAX_DIFFERENCE < other.difference
    assert copy.cropped == 1 and copy.cover[0] < 1  # the second one is the crop
