"""kiln convert: TFRecord shards round trip (convert -> verify -> train -> evaluate), idempotent re-runs,
corrupted shards caught, and the same pixels as reading the image folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synth import draw, make_image_folder

TRAIN = {"verbose": 0, "tensorboard": False}


@pytest.fixture(scope="session")
def source(tmp_path_factory):
    """3 classes x 24 images (PNG), one EXIF-rotated JPEG, one truncated file."""
    root = make_image_folder(tmp_path_factory.mktemp("records") / "images", classes=3, per_class=24, size=(24, 32), seed=3)
    rng = np.random.default_rng(1)
    img = Image.fromarray(draw(1, (24, 32), rng))
    exif = img.getexif()
    exif[0x0112] = 8
    img.save(root / "class_b" / "rotated.jpg", exif=exif.tobytes(), quality=95)
    (root / "class_c" / "broken.png").write_bytes((root / "class_c" / "0001.png").read_bytes()[:60])
    return root


@pytest.fixture(scope="session")
def shards(source, tmp_path_factory):
    import kiln

    out = tmp_path_factory.mktemp("shards") / "s"
    manifest = kiln.convert(source, out, shard_images=12, seed=5)  # several shards per split to interleave
    return out, manifest


def test_manifest_lists_classes_counts_and_checksummed_shards(source, shards):
    out, manifest = shards
    assert not manifest["up_to_date"]
    assert manifest["classes"] == ["class_a", "class_b", "class_c"]
    assert manifest["images"] == 3 * 24 + 1 and manifest["skipped"] == 1
    counts = manifest["counts"]
    assert sum(sum(c.values()) for c in counts.values()) == 73
    assert counts["train"]["class_b"] > counts["train"]["class_a"] - 2 and set(counts) == {"train", "val", "test"}
    files = sorted(p.name for p in out.glob("*.tfrecord"))
    assert files == sorted(s["file"] for s in manifest["shards"])
    assert sum(s["file"].startswith("train-") for s in manifest["shards"]) == int(np.ceil(sum(counts["train"].values()) / 12))
    assert {"sha256", "bytes", "count"} <= set(manifest["shards"][0])
    assert manifest["image"] == {"height": 32, "width": 32, "channels": 3, "resize": "stretch"}
    assert manifest["kiln_version"]
    assert "broken.png" in (out / "skipped.csv").read_text()


def test_rerun_is_idempotent_and_verify_catches_a_corrupted_shard(source, shards, tmp_path, capsys):
    import kiln
    from kiln.cli import main

    out, manifest = shards
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = kiln.convert(source, out, shard_images=12, seed=5)
    assert again["up_to_date"] and {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    # a fresh conversion elsewhere writes byte-identical shards
    other = kiln.convert(source, tmp_path / "again", shard_images=12, seed=5)
    assert [s["sha256"] for s in other["shards"]] == [s["sha256"] for s in manifest["shards"]]
    assert main(["convert", "verify", str(out)]) == 0
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    shard = bad / manifest["shards"][0]["file"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert main(["convert", "verify", str(bad)]) == 1
    assert manifest["shards"][0]["file"] in capsys.readouterr().err
    assert main(["convert", str(source)]) == 2  # out= missing
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["convert", str(source), f"out={tmp_path / 'busy'}"]) == 2
    assert "convert received out=" in capsys.readouterr().err


def test_shards_give_the_same_pixels_as_the_folder(shards):
    from kiln.tasks.image.data import check
    from kiln.tasks.image.data.pipeline import make_dataset
    from kiln.tasks.image.data.records import ShardSource

    out, _ = shards
    src = ShardSource(out)
    rows = src.table()
    rows = rows[rows["split"] == "train"]
    use_pil = check.needs_pil(check.scan(rows["path"].tolist(), 10**8))
    assert use_pil.sum() == int(rows["path"].str.endswith("rotated.jpg").sum()) == 1
    kw = dict(size=(32, 32), channels=3, resize="pad", batch_size=16)
    folder = make_dataset(rows["path"].tolist(), rows["y"].to_numpy(), 3, use_pil=use_pil, **kw)
    from_shards = src.dataset("train", 3, **kw)
    a = np.concatenate([x.numpy() for x, _ in folder])
    b = np.concatenate([x.numpy() for x, _ in from_shards])
    assert a.shape == b.shape == (len(rows), 32, 32, 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(src.labels("train"), rows["y"].to_numpy())
    # training reads: interleaved and shuffled, every image exactly once per epoch
    train = src.dataset("train", 3, training=True, seed=1, **kw)
    assert int(train.cardinality()) == int(np.ceil(len(rows) / 16))
    labels = np.concatenate([y.numpy().argmax(1) for _, y in train])
    assert sorted(labels.tolist()) == sorted(rows["y"].tolist())
    images = np.concatenate([x.numpy() for x, _ in train])
    assert sorted(map(bytes, images.reshape(len(images), -1))) == sorted(map(bytes, a.reshape(len(a), -1)))


def test_train_and_evaluate_from_shards(shards, tmp_path):
    import kiln

    out, manifest = shards
    run = kiln.train(data=str(out), run_dir=str(tmp_path / "run"), epochs=14, seed=0, train=TRAIN,
                     model={"filters": [16, 32], "units": [32]}, evaluate={"report": False})
    assert run.meta["shards"]["folder"] == str(out.resolve())
    assert run.meta["counts"] == {s: sum(c.values()) for s, c in manifest["counts"].items()}
    assert run.spec.size == (32, 32)
    splits = run.splits
    assert list(splits.columns) == ["path", "label", "split", "use_pil", "shard", "record"] and len(splits) == manifest["images"]
    test = run.metrics["test"]
    assert test["n"] == sum(manifest["counts"]["test"].values())
    assert test["accuracy"] > 0.6  # 3 learnable classes
    again = run.evaluate()
    assert again["n"] == test["n"] and again["accuracy"] == pytest.approx(test["accuracy"])
    other = kiln.load_run(run.path).evaluate(data=str(out), split="val")
    assert other["n"] == run.metrics["val"]["n"]
    assert json.loads((run.path / "run.json").read_text())["shards"]["fingerprint"] == manifest["fingerprint"]
    moved = out.with_name("moved")
    out.rename(moved)
    try:
        from kiln.errors import DataError

        with pytest.raises(DataError, match="is gone"):
            kiln.load_run(run.path).evaluate()
        assert kiln.load_run(run.path).evaluate(data=str(moved))["n"] == test["n"]
    finally:
        moved.rename(out)
