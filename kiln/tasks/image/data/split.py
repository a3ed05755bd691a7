"""Stratified, seeded train/val/test split, written to the run folder so a run can be rebuilt."""

from __future__ import annotations

import logging

import pandas as pd

from kiln.errors import DataError, received

log = logging.getLogger("kiln.data")


def _carve(frame: pd.DataFrame, fraction: float, seed: int, name: str, component: str, stratify: bool = True):
    """Split `fraction` of `frame` off, stratified by label; every class keeps at least one each side.
    `stratify=False` (a numeric target): a plain seeded split that keeps at least one image each side."""
    if fraction <= 0 or frame.empty:
        return frame, frame.iloc[0:0]
    from sklearn.model_selection import train_test_split  # here: reading a run's spec must not pay for scikit-learn

    if not stratify:
        n_hold = max(1, int(round(len(frame) * fraction)))
        if len(frame) - n_hold < 1:
            raise DataError(received(component, f"{name}_split", fraction, f"too few images ({len(frame)}) to carve a {name} split",
                                     f"Lower {name}_split or add images"))
        return train_test_split(frame, test_size=n_hold, random_state=seed)
    counts = frame["label"].value_counts()
    small = counts[counts < 2]
    if len(small):
        raise DataError(received(component, "data", f"class {small.index[0]!r} ({int(small.iloc[0])} image)",
                                 f"a class needs at least 2 images per split to carve a {name} split",
                                 f"Add images to that class, remove it, or set {name}_split=0"))
    n_hold = max(int(round(len(frame) * fraction)), len(counts))
    if len(frame) - n_hold < len(counts):
        raise DataError(received(component, f"{name}_split", fraction, f"too few images ({len(frame)}) to keep every class on both sides",
                                 f"Lower {name}_split or add images"))
    keep, hold = train_test_split(frame, test_size=n_hold, stratify=frame["label"], random_state=seed)
    return keep, hold


def assign_splits(frame: pd.DataFrame, val_split: float, test_split: float, seed: int, component: str = "data",
                  stratify: bool = True) -> pd.DataFrame:
    """Fill the `split` column: keep a source's own split, carve what is missing from train (by class unless
    `stratify=False`, for a numeric target)."""
    frame = frame.copy()
    given = frame["split"].notna().all()
    if given:
        train = frame[frame["split"] == "train"]
        val = frame[frame["split"] == "val"]
        test = frame[frame["split"] == "test"]
        if val.empty and val_split > 0:
            train, val = _carve(train, val_split / max(1e-9, 1 - test_split if test.empty else 1), seed, "val", component, stratify)
    else:
        rest, test = _carve(frame, test_split, seed, "test", component, stratify)
        remaining = 1.0 - test_split
        train, val = _carve(rest, val_split / remaining if remaining else 0, seed + 1, "val", component, stratify)
    out = pd.concat([train.assign(split="train"), val.assign(split="val"), test.assign(split="test")])
    missing = set(frame["label"]) - set(out.loc[out["split"] == "train", "label"]) if stratify else set()
    if missing:
        raise DataError(received(component, "data", f"class {sorted(missing)[0]!r}", "it has no training images",
                                 "Add training images for it or remove the class"))
    return out.sort_values(["split", "label", "path"], key=lambda s: s.map({"train": 0, "val": 1, "test": 2}) if s.name == "split" else s).reset_index(drop=True)
