"""TFRecord shards: `kiln convert DATA out=DIR`, `kiln convert verify DIR`, and streamed, interleaved reads.

A shard folder holds

- `{split}-NNNNN-of-MMMMM.tfrecord`: one `tf.train.Example` per image with `image` (the file's own
  encoded bytes; files that need Pillow, i.e. EXIF-rotated ones, re-encoded as lossless PNG after
  rotation), `label` (int64 index into `classes`) and `path` (relative to the source);
- `manifest.json`: format, Kiln version, source, fingerprint, classes, counts per split and class,
  the shard list with record counts, bytes and sha256, the auto image spec and the facts behind it;
- `index.csv`: path, label, split, shard, record of every image, in shard order;
- `skipped.csv`: files left out because they cannot be decoded.

Splits are fixed at conversion (seeded, stratified, like `kiln train`); each split's images are
shuffled once before sharding so every shard mixes classes. Reads decode and resize with the same
`pipeline.py` functions as image folders, so the model sees the same pixels either way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.errors import DataError, KilnError, received
from kiln.io import sha256_file

log = logging.getLogger("kiln.data")

FORMAT = "kiln-tfrecord"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
SHUFFLE_BYTES = 256 << 20  # cap of encoded records held by the training shuffle buffer


def is_shard_folder(path: str | Path | None) -> bool:
    if not path:
        return False
    path = Path(path).expanduser()
    return path.is_dir() and (path / "manifest.json").is_file() and any(path.glob("*.tfrecord*"))


def read_manifest(folder: str | Path, component: str = "data") -> dict:
    from kiln.io import read_json

    path = Path(folder) / "manifest.json"
    manifest = read_json(path, "a Kiln shard manifest", fix="Convert the images again with kiln convert DATA out=DIR",
                         newest=FORMAT_VERSION)  # missing, cut short or newer: one line naming the file
    if manifest.get("format") != FORMAT:
        raise DataError(received(component, "data", folder, "manifest.json is not a Kiln shard manifest",
                                 "Pass a folder written by kiln convert"))
    return manifest


# ---------------------------------------------------------------------------------------------
# Conversion


def _fingerprint(frame: pd.DataFrame, settings: dict) -> str:
    """What the shards depend on: every file's path, label, split, size and mtime, and the settings."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path, label, split in zip(frame["path"], frame["label"], frame["split"]):
        st = os.stat(path)
        digest.update(f"{path}\0{label}\0{split}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _up_to_date(out: Path, fingerprint: str) -> dict | None:
    if not (out / "manifest.json").is_file():
        return None
    try:
        manifest = read_manifest(out, "convert")
    except KilnError:  # damaged or foreign: convert again
        return None
    if manifest.get("fingerprint") != fingerprint:
        return None
    for shard in manifest["shards"]:
        path = out / shard["file"]
        if not path.is_file() or path.stat().st_size != shard["bytes"]:
            return None
    return manifest


def _encoded(path: str, use_pil: bool, channels: int) -> bytes:
    """The file's bytes, or (for files TF cannot orient) Pillow's rotated pixels as a lossless PNG.

    A transparent image keeps its alpha (an RGBA PNG), so it is composited when read, onto the
    alpha_background of the run that reads the shards, as every other file is."""
    if not use_pil:
        with open(path, "rb") as fh:
            return fh.read()
    import io

    from PIL import Image, ImageOps

    from kiln.tasks.image.data import alpha

    with Image.open(path) as img:
        img.seek(0)
        img = ImageOps.exif_transpose(img)
        keep = 4 if channels == 4 or alpha.has_alpha(img) else channels
        arr = alpha.flatten(img, None, keep)
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if keep == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


def _example(image: bytes, label: int, path: str) -> bytes:
    import tensorflow as tf

    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "path": tf.train.Feature(bytes_list=tf.train.BytesList(value=[path.encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_shard(dest: Path, rows: list[tuple], channels: int, bar) -> dict:
    import tensorflow as tf

    from kiln.io import atomic_path

    with atomic_path(dest) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for path, y, use_pil, rel in rows:
                writer.write(_example(_encoded(path, use_pil, channels), int(y), rel))
                bar.update(1)
    return {"file": dest.name, "count": len(rows), "bytes": dest.stat().st_size, "sha256": sha256_file(dest)}


def shard_count(n: int, nbytes: int, shard_mb: int, shard_images: int) -> int:
    """At most `shard_mb` MiB and `shard_images` images per shard (many small images still give several shards to interleave)."""
    if n == 0:
        return 0
    return max(1, math.ceil(nbytes / (shard_mb << 20)), math.ceil(n / shard_images))


def convert(data: str | Path, out: str | Path, cfg=None, shard_mb: int = 100, shard_images: int = 5000, workers: int = 0,
            progress: bool = True) -> dict:
    """Write a source's images as TFRecord shards under `out`; return the manifest.

    Args:
        data: a folder per class, a pre-split folder or a CSV.
        out: the shard folder (created; must be empty or hold an earlier conversion).
        cfg: a `Config` whose `data` section (val_split, test_split, check_images, max_pixels, ...)
            and `seed` split the images like `kiln train` would. Defaults to the default config.
        shard_mb: largest shard size in MiB. Defaults to `100`.
        shard_images: most images in one shard. Defaults to `5000`.
        workers: shards written at once (0: one per CPU core). Defaults to `0`.
        progress: progress bar on stderr (when it is a terminal). Defaults to `True`.

    Re-running with the same files and settings changes nothing (the manifest's `fingerprint`).
    """
    from tqdm import tqdm

    from kiln import __version__
    from kiln.config import load_config
    from kiln.tasks.image.config import image_data
    from kiln.tasks.image.data import check, sources
    from kiln.tasks.image.data.prepare import auto_channels, prepare, resolve_spec
    from kiln.io import write_json, write_text

    cfg = cfg or load_config()  # the defaults, every task's section included
    out = Path(out).expanduser()
    if shard_mb < 1:
        raise KilnError(received("convert", "shard_mb", shard_mb, "a shard needs at least 1 MiB", "Example: shard_mb=100"))
    if shard_images < 1:
        raise KilnError(received("convert", "shard_images", shard_images, "a shard needs at least 1 image", "Example: shard_images=5000"))
    frame = sources.discover(data, component="convert")
    data_cfg = image_data(cfg).model_copy(update={"path": str(data)})
    settings = {"format_version": FORMAT_VERSION, "val_split": data_cfg.val_split, "test_split": data_cfg.test_split,
                "seed": cfg.seed, "check_images": data_cfg.check_images, "max_pixels": data_cfg.max_pixels,
                "channels": data_cfg.channels, "shard_mb": shard_mb, "shard_images": shard_images}
    fingerprint = _fingerprint(frame, settings)
    del frame  # prepare() discovers again; keep one per-image table alive at a time
    if out.exists() and not out.is_dir():
        raise KilnError(received("convert", "out", out, "it is a file", "Pass a folder for the shards"))
    done = _up_to_date(out, fingerprint)
    if done is not None:
        log.info("convert: %s is up to date", out)
        return {**done, "up_to_date": True}
    old = None
    if out.is_dir() and any(out.iterdir()):
        if not (out / "manifest.json").is_file():
            raise KilnError(received("convert", "out", out, "the folder holds other files", "Pass an empty or new folder"))
        old = read_manifest(out, "convert")

    prepared = prepare(data_cfg, cfg.seed, warn=False, progress=progress)  # warned below, naming out/skipped.csv
    base = Path(data).expanduser().resolve()
    base = base.parent if base.is_file() else base
    spec = resolve_spec(data_cfg, prepared.facts)
    table = prepared.table
    ok = prepared.facts
    median_side = float(np.median(np.sqrt(ok["width"].to_numpy() * ok["height"].to_numpy()))) if len(ok) else 0.0
    sizes = {p: os.path.getsize(p) for p in table["path"]}
    rng = np.random.default_rng(cfg.seed)
    jobs, index_parts = [], []
    for split in SPLITS:
        rows = table[table["split"] == split]
        if rows.empty:
            continue
        rows = rows.iloc[rng.permutation(len(rows))]
        n = shard_count(len(rows), sum(sizes[p] for p in rows["path"]), shard_mb, shard_images)
        bounds = np.linspace(0, len(rows), n + 1).astype(int)
        for i in range(n):
            part = rows.iloc[bounds[i]:bounds[i + 1]]
            name = f"{split}-{i:05d}-of-{n:05d}.tfrecord"
            rel = [os.path.relpath(p, base) for p in part["path"]]
            jobs.append((out / name, list(zip(part["path"], part["y"], part["use_pil"], rel))))
            index_parts.append(pd.DataFrame({"path": rel, "label": part["label"].to_numpy(), "split": split,
                                             "shard": name, "record": np.arange(len(part))}))
    out.mkdir(parents=True, exist_ok=True)
    import tensorflow  # noqa: F401  (loaded before the bar starts, not inside the first shard's timing)

    bar = tqdm(total=len(table), desc="kiln convert", unit="img", file=sys.stderr, disable=None if progress else True)
    lock = threading.Lock()

    class _Bar:  # tqdm's update from several threads, serialised
        def update(self, n):
            with lock:
                bar.update(n)

    try:
        with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
            shards = list(pool.map(lambda job: _write_shard(job[0], job[1], spec.channels, _Bar()), jobs))
    finally:
        bar.close()
    for shard, (dest, _) in zip(shards, jobs):
        shard["split"] = dest.name.split("-", 1)[0]

    index = pd.concat(index_parts, ignore_index=True)
    write_text(out / "index.csv", index.to_csv(index=False))
    skipped = prepared.skipped
    write_text(out / "skipped.csv", skipped.reindex(columns=["path", "label", "error"]).to_csv(index=False))
    if len(skipped):
        check.warn_skipped(skipped["error"], len(skipped) + len(table), str(out / "skipped.csv"))
    counts = {s: {c: int(n) for c, n in table[table["split"] == s]["label"].value_counts().sort_index().items()}
              for s in SPLITS if (table["split"] == s).any()}
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kiln_version": __version__,
        "source": str(Path(data).expanduser().resolve()), "base": str(base), "fingerprint": fingerprint, "settings": settings,
        "classes": prepared.classes, "counts": counts, "images": int(len(table)), "skipped": int(len(skipped)),
        "image": spec.to_dict(), "facts": {"median_side": median_side, "channels": int(auto_channels(ok))},
        "shards": shards, "bytes": int(sum(s["bytes"] for s in shards)),
    }
    write_json(out / "manifest.json", manifest)
    if old:  # shards of the earlier conversion that this one did not rewrite (Kiln's own files)
        keep = {s["file"] for s in shards}
        for shard in old.get("shards", []):
            stale = out / Path(shard["file"]).name
            if shard["file"] not in keep and stale.is_file() and stale.suffix == ".tfrecord":
                stale.unlink()
    return {**manifest, "up_to_date": False}


def verify(folder: str | Path) -> list[str]:
    """Check every shard's size and sha256 against manifest.json; return one line per problem (empty: all good)."""
    folder = Path(folder).expanduser()
    if not (folder / "manifest.json").is_file():
        raise KilnError(received("convert verify", "DIR", folder, "it has no manifest.json",
                                 "Pass a folder written by kiln convert DATA out=DIR"))
    manifest = read_manifest(folder, "convert verify")
    problems = []
    for shard in manifest["shards"]:
        path = folder / shard["file"]
        if not path.is_file():
            problems.append(f"{shard['file']}: missing")
        elif path.stat().st_size != shard["bytes"]:
            problems.append(f"{shard['file']}: {path.stat().st_size:,} bytes, manifest says {shard['bytes']:,}")
        elif sha256_file(path) != shard["sha256"]:
            problems.append(f"{shard['file']}: sha256 differs from the manifest (the shard changed or is corrupt)")
    return problems


# ---------------------------------------------------------------------------------------------
# Reading


class ShardSource:
    """A shard folder as training and evaluation data."""

    def __init__(self, folder: str | Path, component: str = "data"):
        self.folder = Path(folder).expanduser().resolve()
        self.manifest = read_manifest(self.folder, component)

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    def files(self, split: str) -> list[str]:
        return [str(self.folder / s["file"]) for s in self.manifest["shards"] if s["split"] == split]

    def table(self) -> pd.DataFrame:
        """One row per image in shard order: path (the original file), label, split, shard, record, y, use_pil."""
        from kiln.io import read_csv

        index = read_csv(self.folder / "index.csv", ("path", "label", "split", "shard", "record"), "a Kiln shard index",
                         fix="Convert the images again with kiln convert DATA out=DIR", dtype={"path": str, "label": str, "split": str})
        base = Path(self.manifest["base"])  # index.csv paths are relative to the source folder (a CSV's folder)
        order = {s["file"]: i for i, s in enumerate(self.manifest["shards"])}
        index = index.iloc[np.lexsort((index["record"].to_numpy(), index["shard"].map(order).to_numpy()))]
        index["path"] = [str(base / p) for p in index["path"]]
        index["y"] = index["label"].map({c: i for i, c in enumerate(self.classes)}).astype(int)
        index["use_pil"] = False
        return index.reset_index(drop=True)

    def facts(self) -> pd.DataFrame:
        """Stand-in for check facts, so `resolve_spec` picks the same auto size and channels as for the images."""
        f = self.manifest["facts"]
        side = f["median_side"]
        return pd.DataFrame({"ok": [True], "width": [side], "height": [side], "mode": ["L" if f["channels"] == 1 else "RGB"],
                             "orientation": [1]})

    def describe(self) -> dict:
        return {"folder": str(self.folder), "fingerprint": self.manifest["fingerprint"], "images": self.manifest["images"]}

    def dataset_for(self, rows: pd.DataFrame):
        """A function with `make_dataset`'s signature that reads the shards of `rows`' split instead of files."""
        split = rows["split"].iloc[0]

        def make(paths, labels, num_classes, **kwargs):
            return self.dataset(split, num_classes, **kwargs)

        return make

    def dataset(self, split: str, num_classes: int, *, size: tuple[int, int], channels: int, resize: str = "stretch",
                batch_size: int = 32, training: bool = False, seed: int = 0, cache: str = "none",
                cache_dir: str | None = None, shuffle_buffer: int = 10000, augment=None, drop_remainder: bool = False,
                background="white", **_ignored):
        """Batched `(uint8 (B,H,W,C), one-hot (B,K))` from one split's shards.

        Training: shard order shuffled, shards read interleaved in parallel (non-deterministic order),
        encoded records shuffled (buffer capped at ~256 MB), then decoded in parallel. Evaluation:
        shards read one after another, so images come in `index.csv` order.
        """
        import tensorflow as tf

        from kiln.tasks.image.data.pipeline import AUTOTUNE, decode_batch_op, decode_in_batches

        files = self.files(split)
        if not files:
            raise DataError(received("data", "split", split, "the shard folder has no images in this split", "Convert with that split"))
        n = sum(s["count"] for s in self.manifest["shards"] if s["split"] == split)
        nbytes = sum(s["bytes"] for s in self.manifest["shards"] if s["split"] == split)
        features = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}

        def decode(records):  # a batch of records -> (images, one-hot labels), one NumPy decode call
            ex = tf.io.parse_example(records, features)
            images = decode_batch_op(ex["image"], tf.zeros_like(ex["label"], tf.bool), size, channels, resize, files=False,
                                     background=background)
            return images, tf.one_hot(tf.cast(ex["label"], tf.int32), num_classes)

        if training:
            ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
            ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, buffer_size=1 << 20),
                               cycle_length=min(len(files), max(2, os.cpu_count() or 2)), block_length=1,
                               num_parallel_calls=AUTOTUNE, deterministic=False)
            if cache == "none":
                per_record = max(1, nbytes // max(1, n))
                buffer = int(min(shuffle_buffer, n, max(256, SHUFFLE_BYTES // per_record)))
                ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        else:
            ds = tf.data.TFRecordDataset(files, buffer_size=1 << 20)
        # a known length lets Keras size epochs and progress bars; a shard with a different count fails loudly
        ds = ds.apply(tf.data.experimental.assert_cardinality(n))
        return decode_in_batches(ds, decode, n=n, batch_size=batch_size, training=training, seed=seed, cache=cache,
                                 cache_dir=cache_dir, shuffle_buffer=shuffle_buffer, augment=augment,
                                 drop_remainder=drop_remainder)

    def labels(self, split: str) -> np.ndarray:
        """Integer labels of one split in reading order, without decoding images."""
        import tensorflow as tf

        spec = {"label": tf.io.FixedLenFeature([], tf.int64)}
        ds = tf.data.TFRecordDataset(self.files(split)).batch(4096).map(lambda r: tf.io.parse_example(r, spec)["label"])
        return np.concatenate([b.numpy() for b in ds]) if self.files(split) else np.zeros(0, int)

    def predict_proba(self, run, split: str, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(labels (N,), probabilities (N, K)) of one split with a run's model and image spec."""
        spec = run.spec
        ds = self.dataset(split, len(run.classes), size=spec.size, channels=spec.channels, resize=spec.resize,
                          batch_size=batch_size, background=spec.alpha_background)
        probs = np.asarray(run.model.predict(ds.map(lambda x, y: x), verbose=0))
        return self.labels(split), probs


def prepare_shards(cfg, seed: int):
    """A shard folder as a `Prepared`: the per-image table comes from index.csv, pixels stay in the shards."""
    from kiln.tasks.image.data.prepare import Prepared

    source = ShardSource(cfg.path)
    table = source.table()
    if not len(table[table["split"] == "train"]):
        raise DataError(received("data", "data", cfg.path, "the shard folder has no training images", "Convert again with images in train"))
    skipped = pd.DataFrame(columns=["path", "label", "error"])
    return Prepared(table, source.classes, source.facts(), skipped, shards=source)


def shard_predictions(run, data: str | None, split: str):
    """(y, probs) when evaluating a shard-trained run on its own split, or any run on a shard folder; else None."""
    if data is not None and not is_shard_folder(data):
        return None
    meta = run.meta.get("shards")
    if data is None and not meta:
        return None
    if data is None and not is_shard_folder(meta["folder"]):
        raise DataError(received("evaluate", "data", "<the run's shards>", f"the shard folder it trained on, {meta['folder']}, is gone",
                                 "Pass the shards' new place: kiln evaluate RUN data=SHARD_DIR"))
    source = ShardSource(data or meta["folder"], component="evaluate")
    if data is None and source.manifest["fingerprint"] != meta["fingerprint"]:
        log.warning("evaluate: %s was converted again since this run trained on it; its splits may differ", source.folder)
    if source.classes != run.classes:
        raise DataError(received("evaluate", "data", source.folder, f"its classes ({', '.join(source.classes[:5])}) differ from the run's",
                                 f"The run knows: {', '.join(run.classes)}"))
    if not source.files(split) and split == "test" and source.files("val"):
        log.warning("evaluate: the shards have no test split; using val")
        split = "val"
    if not source.files(split):
        raise DataError(received("evaluate", "split", split, "the shards have no images in that split", "Use split=val or split=test"))
    return source.predict_proba(run, split)
