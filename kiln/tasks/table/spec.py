"""The table spec: what was decided per column, saved in run.json and read back by every stage.

Decisions are made on the training split only (vocabularies, means, scales), so nothing of val or
test leaks into the model. A column left out says why in one logged line.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from kiln.tasks.table.columns import Column, category_values

log = logging.getLogger("kiln.table")

ONE_HOT_MAX = 50  # distinct values up to which a category is one-hot; above it, an embedding
VOCAB_MAX = 5000
MIN_COUNT = 2  # a value seen once in training goes to the out-of-vocabulary bucket, which then trains


@dataclass
class Feature:
    column: str  # the user's column name
    input: str  # the model input's name (the column name made safe for every runtime)
    kind: str  # inferred type (kiln.tasks.table.columns.KINDS)
    encoding: str  # numeric | category | datetime | dropped
    reason: str = ""  # why (dropped columns) or how (one-hot, embedding) in words
    fill: float | None = None  # numeric / datetime: imputed value (train median)
    mean: float | None = None
    std: float | None = None
    missing_indicator: bool = False
    vocabulary: list = field(default_factory=list)
    one_hot: bool = True
    embed_dim: int = 0
    date_format: str | None = None
    year_mean: float | None = None
    year_std: float | None = None


@dataclass
class TableSpec:
    target: str
    task: str  # classification | regression
    features: list[Feature]
    classes: list[str] | None = None
    target_mean: float | None = None
    target_std: float | None = None
    train_rows: int | None = None  # rows the decisions were made on (models size BatchNorm's momentum from it)

    @property
    def used(self) -> list[Feature]:
        return [f for f in self.features if f.encoding != "dropped"]

    def to_dict(self) -> dict:
        return {"target": self.target, "task": self.task, "classes": self.classes, "target_mean": self.target_mean,
                "target_std": self.target_std, "train_rows": self.train_rows, "features": [asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, d: dict) -> "TableSpec":
        return cls(d["target"], d["task"], [Feature(**f) for f in d["features"]], d.get("classes"), d.get("target_mean"), d.get("target_std"),
                   d.get("train_rows"))


def safe_names(columns: list[str]) -> dict[str, str]:
    """Column -> input name of letters, digits and _ (SavedModel / ONNX / TFLite accept these), unique."""
    out, seen = {}, set()
    for c in columns:
        base = re.sub(r"[^A-Za-z0-9_]", "_", c).strip("_") or "col"
        if base[0].isdigit():
            base = "c_" + base
        name, i = base, 2
        while name.lower() in seen:
            name, i = f"{base}_{i}", i + 1
        seen.add(name.lower())
        out[c] = name
    return out


def _civil_year(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(int) + 1970


def build_spec(frame: pd.DataFrame, columns: dict[str, Column], target: str, task: str, train: np.ndarray,
               classes: list[str] | None, y_train: np.ndarray, drop=(), ids=()) -> TableSpec:
    """Per-column decisions from the training rows (`train`: boolean mask over `frame`)."""
    names = safe_names([c for c in frame.columns if c != target])
    features = []
    for name in frame.columns:
        if name == target:
            continue
        col = columns[name]
        f = Feature(name, names[name], col.kind, "dropped")
        present = ~col.missing[train]
        if name in drop:
            f.reason = "drop= names it"
        elif name in ids or col.kind == "identifier":
            f.reason = "identifier (one value per row)"
        elif col.kind == "text":
            f.reason = "free text (a table model does not read it)"
        elif present.sum() == 0:
            f.reason = "no values in the training rows"
        elif col.kind == "category" and category_values(frame[name][train], col.missing[train])[present].size and \
                len(set(category_values(frame[name][train], col.missing[train])[present])) <= 1 and not col.missing[train].any():
            f.reason = "constant (one value)"
        elif col.kind in ("number", "integer", "boolean") and np.nanstd(col.numbers[train]) == 0 and not col.missing[train].any():
            f.reason = "constant (one value)"
        elif col.kind in ("number", "integer", "boolean"):
            x = col.numbers[train][present]
            f.encoding, f.fill, f.mean, f.std = "numeric", float(np.median(x)), float(x.mean()), float(x.std() or 1.0)
            f.missing_indicator = bool(col.missing[train].any())
            f.reason = "standardised" + (", median-imputed with a missing indicator" if f.missing_indicator else "")
        elif col.kind == "datetime":
            d = col.days[train][present]
            years = _civil_year(np.floor(d))
            f.encoding, f.fill, f.mean, f.std = "datetime", float(np.median(d)), float(d.mean()), float(d.std() or 1.0)
            f.year_mean, f.year_std = float(years.mean()), float(years.std() or 1.0)
            f.date_format, f.missing_indicator = col.date_format, bool(col.missing[train].any())
            f.reason = "date parts: trend, year, month, day of month, day of week (cyclic)" + (", missing indicator" if f.missing_indicator else "")
        else:
            vals = pd.Series(category_values(frame[name][train], col.missing[train]))
            counts = vals.value_counts()
            vocab = [v for v, c in counts.items() if c >= MIN_COUNT][:VOCAB_MAX] or list(counts.index[:VOCAB_MAX])
            f.encoding, f.vocabulary = "category", sorted(vocab)
            f.one_hot = len(vocab) <= ONE_HOT_MAX
            f.embed_dim = 0 if f.one_hot else int(min(32, round(1.6 * (len(vocab) + 1) ** 0.56)))
            f.reason = (f"one-hot of {len(vocab)} values + out-of-vocabulary" if f.one_hot
                        else f"embedding ({f.embed_dim}) of {len(vocab)} values + out-of-vocabulary")
        if f.encoding == "dropped":
            log.info("table: column %s left out: %s", name, f.reason)
        features.append(f)
    spec = TableSpec(target, task, features, classes, train_rows=int(np.sum(train)))
    if task == "regression":
        spec.target_mean, spec.target_std = float(np.mean(y_train)), float(np.std(y_train) or 1.0)
    return spec


def encode_rows(frame: pd.DataFrame, spec: TableSpec) -> dict[str, np.ndarray]:
    """Model inputs from raw rows (kiln/tasks/table/predict.py: each column parsed once as its trained kind)."""
    from kiln.tasks.table.predict import encode_rows as encode

    return encode(frame, spec)


def predict_inputs(model, x: dict, batch_size: int | None = None) -> np.ndarray:
    """The model's output for encoded inputs (kiln/tasks/table/predict.py)."""
    from kiln.tasks.table.predict import PREDICT_BATCH, predict_inputs as run

    return run(model, x, batch_size or PREDICT_BATCH)


__all__ = ["Feature", "TableSpec", "build_spec", "encode_rows", "predict_inputs", "safe_names"]
