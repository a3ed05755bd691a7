"""Source -> checked files -> splits -> image spec: everything the trainer needs to build datasets."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.tasks.image.config import ImageData as DataConfig
from kiln.tasks.image.data import alpha, check, sources, split
from kiln.errors import DataError, received

log = logging.getLogger("kiln.data")


@dataclass
class ImageSpec:
    """What the model sees; saved in run.json so predict/serve/export feed the same thing."""

    height: int
    width: int
    channels: int
    resize: str
    alpha_background: str | None = "#ffffff"  # colour transparent pixels are composited onto; None: alpha dropped

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "channels": self.channels, "resize": self.resize,
                "alpha_background": self.alpha_background}

    @classmethod
    def from_dict(cls, d: dict) -> "ImageSpec":
        # a run saved before Kiln composited transparency has no key: it keeps dropping alpha, as it was trained
        return cls(int(d["height"]), int(d["width"]), int(d["channels"]), d.get("resize", "stretch"),
                   d.get("alpha_background"))


SMALL_DATA = 5000  # below this many training images a from-scratch model works at 64 px at most


def max_auto_side(n_train: int | None) -> int:
    """128 px, or 64 for a small dataset: a model learning from a few thousand images or fewer gains little
    from finer detail, and every doubling of the side costs four times the training time."""
    return 64 if n_train is not None and n_train < SMALL_DATA else 128


def auto_side(facts: pd.DataFrame, default_size: int | None, max_side: int = 128) -> int:
    """The model's own size if it has one; else the median image side, rounded up to 32, in [32, max_side]."""
    if default_size:
        return default_size
    ok = facts[facts["ok"]] if "ok" in facts else facts
    if ok.empty:
        return 64
    side = float(np.median(np.sqrt(ok["width"].to_numpy() * ok["height"].to_numpy())))
    return int(min(max_side, max(32, int(np.ceil(side / 32.0)) * 32)))


def auto_channels(facts: pd.DataFrame) -> int:
    ok = facts[facts["ok"]] if "ok" in facts else facts
    return 1 if len(ok) and ok["mode"].isin(check.GREY_MODES).all() else 3


def resolve_spec(cfg: DataConfig, facts: pd.DataFrame, default_size: int | None = None, needs_rgb: bool = False,
                 n_train: int | None = None) -> ImageSpec:
    """What the model sees; `n_train` (training images) caps `image_size=auto` on small data (max_auto_side)."""
    if cfg.image_size == "auto":
        h = w = auto_side(facts, default_size, max_auto_side(n_train))
    elif isinstance(cfg.image_size, int):
        h = w = cfg.image_size
    else:
        h, w = cfg.image_size
    channels = cfg.channels
    if channels == "auto":
        channels = 3 if needs_rgb else auto_channels(facts)
    elif needs_rgb and channels != 3:
        raise DataError(received("data", "channels", channels, "this model takes RGB images", "Use channels=3 or channels=auto"))
    return ImageSpec(h, w, int(channels), cfg.resize, alpha.to_hex(cfg.alpha_background))


@dataclass
class Prepared:
    table: pd.DataFrame  # path, label, split, y, use_pil
    classes: list[str] | None  # None: a numeric target (image regression)
    facts: pd.DataFrame
    skipped: pd.DataFrame  # files left out, with their error
    shards: object = None  # a records.ShardSource when the source is a TFRecord shard folder (pixels stay in the shards)

    def split(self, name: str) -> pd.DataFrame:
        return self.table[self.table["split"] == name]


def prepare(cfg: DataConfig, seed: int, report_path: str | None = None, warn: bool = True, progress: bool = False) -> Prepared:
    """Discover, decode-check and split a source. Reading only: nothing in the source changes.

    Undecodable files are left out (`skipped`) with one warning naming `report_path`; `warn=False` leaves
    the warning to a caller that writes the details first (check.warn_skipped).
    """
    from kiln.tasks.image.data import records

    if records.is_shard_folder(cfg.path):  # splits fixed at conversion; see kiln/tasks/image/data/records.py
        return records.prepare_shards(cfg, seed)
    frame = sources.discover(cfg.path, target=cfg.target)
    regression = "value" in frame
    if cfg.check_images:
        facts = check.scan(frame["path"].tolist(), cfg.max_pixels, progress=progress)
        skipped = facts[~facts["ok"]].merge(frame, on="path")
        frame = check.drop_unreadable(frame, facts, report_path, warn=warn)
        facts = facts[facts["ok"]].reset_index(drop=True)
        if frame.empty:
            raise DataError(received("data", "data", cfg.path, "no file could be decoded as an image",
                                     "Check the files with kiln audit"))
    else:
        sample = frame["path"].sample(min(len(frame), 200), random_state=seed).tolist()
        facts = check.scan(sample, cfg.max_pixels)
        skipped = facts.iloc[0:0]
    frame = split.assign_splits(frame, cfg.val_split, cfg.test_split, seed, stratify=not regression)
    if regression:  # a numeric target: no classes; y is the value (kiln/tasks/image/regress.py)
        classes = None
        frame["y"] = frame.pop("value").astype(np.float64)
    else:
        classes = sorted(frame["label"].unique())
        frame["y"] = frame["label"].map({c: i for i, c in enumerate(classes)}).astype(int)
    frame["use_pil"] = frame["path"].isin(set(facts.loc[check.needs_pil(facts), "path"]))
    return Prepared(frame, classes, facts, skipped)


def write_splits(prepared: Prepared, dest: Path) -> None:
    from kiln.io import write_text

    # shard runs add the shard file and record number of each image (its path is the original file's);
    # use_pil marks files the pipeline decodes with Pillow (EXIF rotation, formats the fast decoders lack), so
    # evaluate and report later feed the model the same pixels training did.
    columns = [c for c in ("path", "label", "split", "use_pil", "shard", "record") if c in prepared.table]
    write_text(dest, prepared.table[columns].to_csv(index=False))
