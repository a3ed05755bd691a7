"""Target, task, split and spec: from a read table to the rows and decisions training uses.

The target decides the task (a numeric target with many distinct values is regression, anything
else classification; `task=classify|regress` overrides). Without a `split` column the rows get a
seeded 80/10/10 split, stratified by class (by target quantile for regression).
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from kiln.errors import DataError, received
from kiln.tasks.table.columns import Column, category_values, infer_column, infer_columns
from kiln.tasks.common.tabular import missing_mask

log = logging.getLogger("kiln.table")

RESERVED = ("prediction",)  # predict adds these columns, so a user column must not hold their names
RESERVED_PREFIX = "proba_"
REGRESSION_MIN_UNIQUE = 20
SPLITS = ("train", "val", "test")


@dataclass
class Target:
    name: str
    task: str  # classification | regression
    y: np.ndarray  # int class index (-1: missing) or float (NaN: missing)
    classes: list[str] | None = None


def check_columns(frame: pd.DataFrame, component: str = "data") -> None:
    for c in frame.columns:
        if c in RESERVED or c.startswith(RESERVED_PREFIX):
            raise DataError(received(component, "column", c, f"the name clashes with a column Kiln adds to predictions "
                                     f"(prediction, {RESERVED_PREFIX}<class>)", "Rename the column in a copy of the file"))


def text_columns(frame: pd.DataFrame, sample: int = 2000) -> list[str]:
    """Columns whose cells read as free text (kiln.tasks.table.columns: many words, mostly distinct), from a sample."""
    from kiln.tasks.table.columns import infer_column

    head = frame.iloc[:sample]
    return [str(c) for c in head.columns if not pd.api.types.is_numeric_dtype(head[c]) and infer_column(str(c), head[c]).kind == "text"]


def find_column(frame: pd.DataFrame, name: str | None, key: str, component: str = "data") -> str:
    if not name:
        text = text_columns(frame)
        also = f" (or, to classify the text in {text[0]}: text={text[0]} target=COLUMN)" if text else ""
        raise DataError(received(component, key, "<none>", "a table needs the column to predict",
                                 f"Pass {key}=COLUMN, one of: {', '.join(map(str, frame.columns[:12]))}{also}"))
    if name in frame.columns:
        return name
    near = difflib.get_close_matches(name, list(frame.columns), n=3, cutoff=0.5)
    lower = [c for c in frame.columns if c.lower() == name.lower()]
    near = lower + [c for c in near if c not in lower]
    hint = f"Did you mean {' or '.join(near)}?" if near else f"Columns: {', '.join(map(str, frame.columns[:12]))}"
    raise DataError(received(component, key, name, "no such column in the file", hint))


def resolve_target(frame: pd.DataFrame, name: str, task: str = "auto", classes: list[str] | None = None,
                   component: str = "data") -> Target:
    """Encode the target column; one-line errors for a target that cannot be learned."""
    values = frame[name]
    col = infer_column(name, values)
    present = int((~col.missing).sum())
    if present == 0:
        raise DataError(received(component, "target", name, "every value of the target is missing", "Pick a column with values"))
    numeric = col.kind in ("number", "integer") and col.strays == 0
    if task == "auto":
        task = "regression" if numeric and (col.kind == "number" or col.unique > REGRESSION_MIN_UNIQUE) else "classification"
    if task == "regression":
        nums = infer_column(name, values, kind="number")
        if nums.strays:
            raise DataError(received(component, "target", name, f"a regression target must be numbers; {nums.strays} cells are text "
                                     f"(e.g. {nums.stray_examples[0]!r})", "Fix those cells, or pass task=classify"))
        return Target(name, "regression", nums.numbers)
    text = category_values(values, col.missing)
    if classes is None:
        classes = sorted(set(text[~col.missing]), key=_class_key)
        if len(classes) < 2:
            raise DataError(received(component, "target", name, f"it has one class ({classes[0]!r}); a classifier needs two or more",
                                     "Pick another target or add rows of other classes"))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index.get(v, -1) if not m else -1 for v, m in zip(text, col.missing)], dtype=np.int64)
    return Target(name, "classification", y, list(classes))


def _class_key(c: str):
    try:
        return (0, float(c), c)
    except ValueError:
        return (1, 0.0, c)


def assign_splits(frame: pd.DataFrame, target: Target, val: float, test: float, seed: int, component: str = "data") -> np.ndarray:
    """The split of every row: the `split` column's when present, else seeded and stratified."""
    if "split" in frame.columns and frame["split"].astype(str).str.strip().str.lower().isin(SPLITS).all():
        return frame["split"].astype(str).str.strip().str.lower().to_numpy(dtype=object)
    if "split" in frame.columns:
        bad = frame["split"][~frame["split"].astype(str).str.strip().str.lower().isin(SPLITS)].iloc[0]
        raise DataError(received(component, "split", bad, "a split column may hold only train, val and test", "Fix the column or rename it"))
    n = len(frame)
    idx = np.arange(n)
    strat = target.y if target.task == "classification" else pd.qcut(pd.Series(target.y).rank(method="first"), 10, labels=False).to_numpy()
    counts = np.bincount(strat[strat >= 0]) if target.task == "classification" else None
    stratify = strat if counts is None or counts[counts > 0].min() >= 3 else None
    out = np.full(n, "train", dtype=object)
    if test > 0:
        rest, hold = train_test_split(idx, test_size=test, random_state=seed, stratify=stratify)
        out[hold] = "test"
    else:
        rest = idx
    if val > 0:
        _, hold = train_test_split(rest, test_size=val / (1 - test), random_state=seed + 1,
                                   stratify=None if stratify is None else stratify[rest])
        out[hold] = "val"
    return out


def features_frame(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    return frame.drop(columns=[c for c in (target, "split") if c in frame.columns])


def usable_rows(target: Target) -> np.ndarray:
    return target.y >= 0 if target.task == "classification" else np.isfinite(target.y)


def infer_feature_columns(frame: pd.DataFrame, target: str) -> dict[str, Column]:
    return infer_columns(features_frame(frame, target))


__all__ = ["RESERVED", "Target", "assign_splits", "check_columns", "features_frame", "find_column", "infer_feature_columns",
           "missing_mask", "resolve_target", "usable_rows"]
