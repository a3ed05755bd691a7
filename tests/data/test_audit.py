"""kiln audit: every problem kind generated here, reported with the right kind; nothing changes on disk;
quarantine moves and restores; training on the same mixed folder finishes."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synth import draw

CLASSES = ["class_a", "class_b", "class_c"]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def make_mixed(root: Path) -> dict[str, set[str]]:
    """A pre-split folder of good 32x32 images plus one file of every problem kind.

    Returns {relative path: expected kinds} for every file that must be reported.
    """
    rng = np.random.default_rng(7)
    for split, n in (("train", 14), ("val", 4), ("test", 4)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = Image.fromarray(draw(c, 32, rng))
                if i % 2:
                    img.save(folder / f"{i:04d}.jpg", quality=92)
                else:
                    img.save(folder / f"{i:04d}.png")
    a, b, c = (root / "train" / n for n in CLASSES)
    good = draw(0, 32, rng)
    buf = io.BytesIO()
    Image.fromarray(good).save(buf, format="JPEG", quality=92)
    jpeg = buf.getvalue()
    (a / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    Image.fromarray(draw(0, 32, rng)).convert("CMYK").save(a / "cmyk.jpg")
    Image.fromarray((draw(0, 32, rng)[..., 0].astype(np.uint16) * 257)).save(a / "deep16.png")
    assert Image.open(a / "deep16.png").mode == "I;16"
    frames = [Image.fromarray(draw(0, 32, rng)) for _ in range(3)]
    frames[0].save(a / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    Image.fromarray(draw(0, 32, rng)).save(a / "png_named.jpg", format="PNG")
    (a / "text.jpg").write_text("this is a text file, not a picture\n")
    (a / "empty.jpg").write_bytes(b"")
    (a / "bomb.png").write_bytes(_png(100_000, 100_000, zlib.compress(b"\0" * 64)))
    (a / "corrupt.png").write_bytes(_png(32, 32, b"definitely not a zlib stream" * 3))
    img = Image.fromarray(draw(0, 32, rng))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(a / "rotated.jpg", exif=exif.tobytes(), quality=92)
    Image.fromarray(draw(0, 8, rng)).save(b / "tiny.png")
    Image.fromarray(draw(1, (20, 200), rng)).save(b / "wide.png")
    rgba = np.dstack([draw(1, 32, rng), np.full((32, 32), 128, np.uint8)])
    Image.fromarray(rgba).save(b / "alpha.png")
    Image.fromarray(draw(1, 32, rng)).convert("P").save(b / "palette.png")
    shutil.copy(b / "0002.png", b / "copy_of_0002.png")  # exact duplicate, same label
    Image.open(b / "0004.png").save(b / "near_0004.jpg", quality=85)  # near duplicate, same label
    shutil.copy(a / "0006.png", c / "same_as_a_0006.png")  # same image under two labels
    shutil.copy(b / "0008.png", root / "test" / "class_b" / "leak_0008.png")  # same image in train and test
    return {
        "train/class_a/truncated.jpg": {"truncated"},
        "train/class_a/cmyk.jpg": {"cmyk"},
        "train/class_a/deep16.png": {"high_bit_depth"},
        "train/class_a/animated.gif": {"animated"},
        "train/class_a/png_named.jpg": {"wrong_extension"},
        "train/class_a/text.jpg": {"not_image"},
        "train/class_a/empty.jpg": {"empty"},
        "train/class_a/bomb.png": {"bomb"},
        "train/class_a/corrupt.png": {"corrupt"},
        "train/class_a/rotated.jpg": {"exif_orientation"},
        "train/class_b/tiny.png": {"too_small"},
        "train/class_b/wide.png": {"extreme_aspect"},
        "train/class_b/alpha.png": {"alpha"},
        "train/class_b/palette.png": {"palette"},
        "train/class_b/copy_of_0002.png": {"duplicate"},
        "train/class_b/near_0004.jpg": {"near_duplicate"},
        "train/class_a/0006.png": {"label_conflict"},
        "train/class_c/same_as_a_0006.png": {"label_conflict"},
        "train/class_b/0008.png": {"split_leak"},
        "test/class_b/leak_0008.png": {"split_leak"},
    }


UNREADABLE = {"truncated", "not_image", "empty", "bomb", "corrupt"}


def tree_state(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under root."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed") / "data"
    expected = make_mixed(root)
    return root, expected


@pytest.fixture(scope="session")
def mixed_audit(mixed, tmp_path_factory):
    from kiln.tasks.image.data import audit as auditing

    root, _ = mixed
    before = tree_state(root)
    out = tmp_path_factory.mktemp("audit")
    floor, auditing.POOL_MIN_FILES = auditing.POOL_MIN_FILES, 0  # exercise the process pool on a small folder
    try:
        report = auditing.audit(root, out=out, options={"workers": 2}, progress=False)
    finally:
        auditing.POOL_MIN_FILES = floor
    return report, out, before


def test_every_kind_reported_and_no_good_file_flagged(mixed, mixed_audit):
    root, expected = mixed
    report, out, _ = mixed_audit
    found: dict[str, set[str]] = {}
    for p in report["problems"]:
        found.setdefault(str(Path(p["path"]).relative_to(root)), set()).add(p["kind"])
        assert p["detail"] and p["severity"] in ("error", "warning", "info")
    assert found == expected
    assert report["files"] == 3 * (14 + 4 + 4) + 18
    assert report["severities"]["error"] == len(UNREADABLE)
    assert report["readable"] == report["files"] - len(UNREADABLE)
    groups = sorted(sorted(str(Path(x).relative_to(root)) for x in g) for g in report["duplicates"])
    assert groups == [["test/class_b/leak_0008.png", "train/class_b/0008.png"],
                      ["train/class_a/0006.png", "train/class_c/same_as_a_0006.png"],
                      ["train/class_b/0002.png", "train/class_b/copy_of_0002.png"],
                      ["train/class_b/0004.png", "train/class_b/near_0004.jpg"]]
    saved = json.loads((out / "audit.json").read_text())
    assert {"files", "problems", "duplicates", "classes"} <= set(saved)
    assert saved["classes"] == {"class_a": 22 + 10, "class_b": 22 + 7, "class_c": 23}
    imb = saved["imbalance"]
    assert imb["largest"] == "class_b" and imb["smallest"] == "class_c"
    assert imb["ratio"] == pytest.approx(29 / 23, abs=1e-3)
    assert imb["class_weights"]["class_c"] > 1 > imb["class_weights"]["class_b"]


def test_audit_changes_no_file_and_writes_a_self_contained_page(mixed, mixed_audit):
    root, _ = mixed
    report, out, before = mixed_audit
    assert tree_state(root) == before
    page = (out / "audit.html").read_text()
    assert page.count("data:image/png;base64,") >= 3  # class histogram, size scatter, aspect histogram
    assert page.count("data:image/jpeg;base64,") >= 8  # thumbnails of problem files
    assert "http://" not in page and "https://" not in page and "<script" not in page
    for kind in ("truncated", "cmyk", "label_conflict", "split_leak"):
        assert f"<h2 class=" in page and f">{kind}</h2>" in page


def test_strict_exit_codes_and_user_mistakes(mixed, tmp_path, capsys):
    from kiln.cli import main

    root, _ = mixed
    clean = tmp_path / "clean"
    for name in CLASSES[:2]:
        shutil.copytree(root / "val" / name, clean / name)
    assert main(["audit", str(clean), f"out={tmp_path / 'a1'}", "strict=true"]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert main(["audit", str(root), f"out={tmp_path / 'a2'}", "strict=true", "workers=1"]) == 1
    assert main(["audit", str(root), f"out={tmp_path / 'a3'}"]) == 0
    captured = capsys.readouterr()
    assert "error" in captured.out and "truncated" in captured.out
    assert main(["audit", str(root), "fix=delete"]) == 2
    assert main(["audit", str(root), "min_side=-3"]) == 2
    assert main(["audit", str(root), "ignore=nonsense"]) == 2
    assert main(["audit", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "audit received fix=delete" in err and "audit received min_side=-3" in err


def test_quarantine_moves_and_restore_refuses_to_overwrite(mixed, tmp_path, capsys):
    from kiln.cli import main

    root, expected = mixed
    data = tmp_path / "data"
    shutil.copytree(root, data)
    before = tree_state(data)
    assert main(["audit", str(data), f"out={tmp_path / 'audit'}", "fix=quarantine", "workers=1"]) == 0
    quarantine = tmp_path / "data.quarantine"
    manifest = json.loads((quarantine / "manifest.json").read_text())
    moved = {str(Path(m["from"]).relative_to(data)) for m in manifest["files"]}
    # errors and warnings move (one copy of each duplicate stays: the train copy, the first path); info kinds stay
    assert moved == {p for p, kinds in expected.items() if kinds & (UNREADABLE | {"too_small", "extreme_aspect", "duplicate",
                                                                                 "near_duplicate", "label_conflict"})} | {"test/class_b/leak_0008.png"}
    for rel in moved:
        assert not (data / rel).exists() and (quarantine / rel).is_file()
    assert (data / "train/class_b/0008.png").is_file() and (data / "train/class_a/cmyk.jpg").is_file()
    # restore refuses while an original path is taken, and moves nothing
    (data / "train/class_a/text.jpg").write_text("new file")
    assert main(["audit", "restore", str(quarantine / "manifest.json")]) == 2
    assert "never overwrites" in capsys.readouterr().err
    assert (quarantine / "train/class_a/truncated.jpg").is_file()
    (data / "train/class_a/text.jpg").unlink()
    assert main(["audit", "restore", str(quarantine / "manifest.json")]) == 0
    assert {k: v[0] for k, v in tree_state(data).items()} == {k: v[0] for k, v in before.items()}
    assert json.loads((quarantine / "manifest.json").read_text())["restored"]


def test_api_quarantine_goes_through_the_task(mixed, tmp_path):
    """kiln.audit(fix="quarantine") reaches the image task's quarantine (Task.quarantine), as kiln audit does."""
    import kiln

    root, _ = mixed
    data = tmp_path / "data"
    shutil.copytree(root, data)
    report = kiln.audit(data, out=tmp_path / "audit", fix="quarantine", progress=False, workers=1)
    manifest = json.loads(Path(report["manifest"]).read_text())
    assert Path(report["manifest"]).parent == tmp_path / "data.quarantine" and report["quarantine"]
    assert {str(Path(m["from"]).resolve()) for m in manifest["files"]} == {str(Path(p).resolve()) for p in report["quarantine"]}
    assert all(not Path(m["from"]).exists() for m in manifest["files"])


def test_training_on_the_mixed_folder_finishes(mixed, tmp_path, caplog):
    import kiln

    root, expected = mixed
    logger = logging.getLogger("kiln")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="kiln"):
            run = kiln.train(data=str(root), run_dir=str(tmp_path / "run"), epochs=2, seed=0, image_size=32, channels=3,
                             train={"verbose": 0, "tensorboard": False}, model={"filters": [8], "units": [16]},
                             evaluate={"report": False})
    finally:
        logger.removeHandler(caplog.handler)
    skipped = (tmp_path / "run" / "skipped.csv").read_text()
    left_out = {p for p, kinds in expected.items() if kinds & UNREADABLE}
    assert len(skipped.strip().splitlines()) == 1 + len(left_out)
    for rel in left_out:
        assert str(root / rel) in skipped
    warnings = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(warnings) == 1 and "left out 5 of" in warnings[0] and str(tmp_path / "run" / "skipped.csv") in warnings[0]
    assert run.meta["counts"]["train"] == 3 * 14 + 18 - 1 - len(left_out)
    assert set(run.metrics) == {"val", "test"} and run.metrics["test"]["n"] == 13
    assert (tmp_path / "run" / "model.keras").is_file()


def test_near_pairs_matches_brute_force():
    from kiln.tasks.image.data.audit import near_pairs

    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 60, dtype=np.uint64)
    flips = [base[i] ^ np.uint64(1 << int(b)) for i, b in zip(range(0, 60, 3), rng.integers(0, 64, 20))]
    hashes = np.concatenate([base, np.array(flips, dtype=np.uint64)])
    for d in (0, 1, 4, 20):
        brute = {(i, j) for i in range(len(hashes)) for j in range(i + 1, len(hashes))
                 if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= d}
        assert set(near_pairs(hashes, d)) == brute
