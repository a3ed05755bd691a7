"""Sources, splits, image checks and the tf.data pipeline."""

import hashlib
import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kiln.tasks.image.config import ImageData as DataConfig
from kiln.tasks.image.data import sources
from kiln.tasks.image.data.pipeline import make_dataset
from kiln.tasks.image.data.prepare import prepare, resolve_spec
from kiln.tasks.image.data.split import assign_splits
from kiln.errors import DataError
from synth import draw, make_image_folder


def tree_hash(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_folder_per_class_and_split_counts(tmp_path):
    root = make_image_folder(tmp_path / "d", classes=3, per_class=20)
    frame = sources.discover(root)
    assert len(frame) == 60 and frame.attrs["kind"] == "folders"
    out = assign_splits(frame, 0.1, 0.1, seed=3)
    counts = out.groupby(["split", "label"]).size().unstack()
    assert counts.loc["train"].tolist() == [16, 16, 16]
    assert counts.loc["val"].tolist() == [2, 2, 2] and counts.loc["test"].tolist() == [2, 2, 2]
    again = assign_splits(frame, 0.1, 0.1, seed=3)
    assert out.equals(again)  # seeded: reproducible
    other = assign_splits(frame, 0.1, 0.1, seed=4)
    assert not out["path"].equals(other["path"])


def test_presplit_folder_keeps_its_splits(tmp_path):
    root = make_image_folder(tmp_path / "p", classes=2, presplit={"train": 10, "val": 3, "test": 4})
    frame = sources.discover(root)
    assert frame.attrs["kind"] == "presplit"
    out = assign_splits(frame, 0.1, 0.1, seed=0)
    assert out["split"].value_counts().to_dict() == {"train": 20, "test": 8, "val": 6}


def test_csv_source_relative_paths_and_split(tmp_path):
    root = make_image_folder(tmp_path / "c", classes=2, per_class=6)
    rows = [{"path": str(p.relative_to(tmp_path)), "label": p.parent.name, "split": "train" if i % 3 else "test"}
            for i, p in enumerate(sorted(root.rglob("*.png")))]
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    frame = sources.discover(tmp_path / "labels.csv")
    assert len(frame) == 12 and set(frame["split"]) == {"train", "test"}
    assert all(p.startswith(str(tmp_path)) for p in frame["path"])


@pytest.mark.parametrize("setup, message", [
    ("missing", "data received data="),
    ("empty", "no images were found"),
    ("one_class", "only one class (a) was found"),
    ("csv_columns", "the CSV has no label column"),
    ("csv_missing_file", "1 listed file(s) do not exist"),
    ("csv_empty_label", "1 row(s) have an empty label"),
])
def test_bad_sources_one_line_errors(tmp_path, setup, message):
    target = tmp_path / "data"
    if setup == "empty":
        target.mkdir()
    elif setup == "one_class":
        make_image_folder(target, classes=1, per_class=3, names=["a"])
    elif setup.startswith("csv"):
        make_image_folder(tmp_path / "img", classes=2, per_class=2)
        target = tmp_path / "l.csv"
        first = sorted((tmp_path / "img").rglob("*.png"))[0].relative_to(tmp_path)
        text = {"csv_columns": f"path,klass\n{first},a\n",
                "csv_missing_file": f"path,label\n{first},a\nimg/none.png,b\n",
                "csv_empty_label": f"path,label\n{first},a\n{first},\n"}[setup]
        target.write_text(text)
    with pytest.raises(DataError) as err:
        sources.discover(target)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_class_too_small_to_split(tmp_path):
    root = make_image_folder(tmp_path / "d", classes=2, per_class=10)
    for p in sorted((root / "class_b").iterdir())[1:]:
        p.unlink()
    with pytest.raises(DataError, match="class 'class_b' \\(1 image\\)"):
        assign_splits(sources.discover(root), 0.1, 0.1, 0)


def test_formats_and_modes_decode_to_configured_channels(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "f"
    files = []
    for c, name in enumerate(["a", "b"]):
        folder = root / name
        folder.mkdir(parents=True)
        base = Image.fromarray(draw(c, (30, 40), rng))
        variants = {"x.jpg": base, "x.png": base.convert("RGBA"), "x.bmp": base, "x.webp": base,
                    "p.png": base.convert("P"), "g.png": base.convert("L")}
        for fname, img in variants.items():
            img.save(folder / fname)
            files.append(folder / fname)
        frames = [base, base.rotate(90)]
        frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
        files.append(folder / "anim.gif")
    before = tree_hash(root)
    prepared = prepare(DataConfig(path=str(root), val_split=0, test_split=0), seed=0)
    assert len(prepared.table) == 14 and prepared.skipped.empty
    for channels in (1, 3):
        for resize in ("stretch", "pad", "crop"):
            ds = make_dataset(prepared.table["path"], prepared.table["y"], 2, size=(24, 20), channels=channels,
                              resize=resize, batch_size=14)
            x, y = next(iter(ds))
            assert x.shape == (14, 24, 20, channels) and x.dtype.name == "uint8"
            assert y.shape == (14, 2)
    assert tree_hash(root) == before  # nothing in the user's folder changed


def test_undecodable_files_left_out_with_one_warning(tmp_path, caplog):
    root = make_image_folder(tmp_path / "d", classes=2, per_class=10)
    (root / "class_a" / "broken.jpg").write_bytes(b"not an image at all")
    good = (root / "class_b" / "0000.png").read_bytes()
    (root / "class_b" / "truncated.png").write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.WARNING, logger="kiln"):
        prepared = prepare(DataConfig(path=str(root)), seed=0)
    assert len(prepared.table) == 20 and len(prepared.skipped) == 2
    warnings = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(warnings) == 1 and "left out 2 of 22" in warnings[0]


def test_auto_spec_small_grey_vs_photos(tmp_path):
    grey = make_image_folder(tmp_path / "g", classes=2, per_class=4, size=8, grey=True)
    photo = make_image_folder(tmp_path / "p", classes=2, per_class=4, size=(240, 320), fmt="jpg")
    g = prepare(DataConfig(path=str(grey), val_split=0, test_split=0), 0)
    p = prepare(DataConfig(path=str(photo), val_split=0, test_split=0), 0)
    assert resolve_spec(DataConfig(), g.facts).shape == (32, 32, 1)
    assert resolve_spec(DataConfig(), p.facts).shape == (128, 128, 3)
    assert resolve_spec(DataConfig(image_size=[48, 64], channels=3), g.facts).shape == (48, 64, 3)
