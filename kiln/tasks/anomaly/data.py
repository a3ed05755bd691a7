"""From a file to what the anomaly model trains on: rows of a table or windows of a sensor series, each normal (0),
anomalous (1) or unlabelled (-1), with a split; anomalies never go to train.

Tables reuse the table task's column decisions (imputation, scaling, one-hot categories; inside the model).
Series: `time=` sorts the rows, value columns (every numeric one unless `columns=`) are interpolated over gaps and
cut into windows of `window` steps; a window is anomalous when any of its steps is labelled so, and belongs to the
split its steps lie in (train first, then val, then test, in time order).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from kiln.errors import DataError, received

log = logging.getLogger("kiln.anomaly")

ANOMALY_WORDS = {"1", "1.0", "true", "yes", "y", "t", "anomaly", "anomalous", "outlier", "abnormal", "fraud"}
NORMAL_WORDS = {"0", "0.0", "false", "no", "n", "f", "normal", "inlier", "ok"}


@dataclass
class AnomalySpec:
    kind: str  # table | series
    label: str | None = None
    anomaly_label: str | None = None
    error: str = "squared"
    reduction: str = "mean"
    table: dict | None = None  # the table task's TableSpec.to_dict() (kind=table)
    time: str | None = None  # kind=series from here
    time_format: str | None = None
    columns: list = field(default_factory=list)
    window: int = 0
    stride: int = 1
    mean: list = field(default_factory=list)
    std: list = field(default_factory=list)
    season: int = 1  # steps per season of the series' frequency (the seasonal-naive baseline's lag)
    size: int = 0  # kind=image: side in pixels
    channels: int = 0  # kind=image: 1 or 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AnomalySpec":
        return cls(**d)

    @property
    def table_spec(self):
        from kiln.tasks.table.spec import TableSpec

        return TableSpec.from_dict(self.table)


def flags(values: pd.Series, column: str, anomaly_label: str | None, component: str) -> np.ndarray:
    """1 anomaly, 0 normal, -1 missing, for each cell of the label column."""
    from kiln.tasks.common.tabular import missing_mask

    missing = missing_mask(values)
    text = values.astype(str).str.strip().str.lower()
    if anomaly_label is not None:
        want = str(anomaly_label).strip().lower()
        if not (text[~missing] == want).any():
            seen = ", ".join(sorted(set(text[~missing]))[:8])
            raise DataError(received(component, "anomaly_label", anomaly_label, f"no cell of {column} holds it (values: {seen})",
                                     "Pass anomaly_label= one of those values"))
        out = np.where(text == want, 1, 0)
    else:
        bad = sorted(set(text[~missing]) - ANOMALY_WORDS - NORMAL_WORDS)
        if bad:
            raise DataError(received(component, "label", column, f"its values {', '.join(bad[:5])} are neither anomaly (1, true, yes, "
                                     "anomaly) nor normal (0, false, no, normal)", "Pass anomaly_label=VALUE naming the anomalous value"))
        out = np.where(text.isin(ANOMALY_WORDS), 1, 0)
    return np.where(missing, -1, out).astype(np.int64)


def read_labels(frame: pd.DataFrame, cfg_a, component: str) -> np.ndarray:
    from kiln.tasks.table.prepare import find_column

    if not cfg_a.label:
        return np.zeros(len(frame), np.int64)
    find_column(frame, cfg_a.label, "label", component)
    return flags(frame[cfg_a.label], cfg_a.label, cfg_a.anomaly_label, component)


def table_splits(y: np.ndarray, val: float, test: float, seed: int, given: pd.Series | None, component: str) -> np.ndarray:
    """Normal rows: seeded train / val / test; anomalies half val, half test (never train). A split column is kept,
    its train anomalies left out of training."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    if given is not None:
        s = given.astype(str).str.strip().str.lower()
        if not s.isin(("train", "val", "test")).all():
            raise DataError(received(component, "split", s[~s.isin(("train", "val", "test"))].iloc[0],
                                     "a split column may hold only train, val and test", "Fix the column or rename it"))
        return s.to_numpy(dtype=object)
    out = np.full(n, "train", dtype=object)
    normal = np.flatnonzero(y != 1)
    rest = normal
    if test > 0 and len(normal) > 2:
        rest, hold = train_test_split(normal, test_size=test, random_state=seed)
        out[hold] = "test"
    if val > 0 and len(rest) > 2:
        _, hold = train_test_split(rest, test_size=val / (1 - test), random_state=seed + 1)
        out[hold] = "val"
    bad = np.random.default_rng(seed).permutation(np.flatnonzero(y == 1))
    out[bad[: (len(bad) + 1) // 2]] = "val"
    out[bad[(len(bad) + 1) // 2:]] = "test"
    return out


def check_train(y: np.ndarray, split: np.ndarray, path, component: str) -> None:
    if (y == 1).all():
        raise DataError(received(component, "data", path, "every row is labelled anomalous; an autoencoder learns what normal looks like",
                                 "Train on a source with normal rows"))
    if not ((split == "train") & (y != 1)).any():
        raise DataError(received(component, "data", path, "the training split holds no normal row", "Give train normal rows"))


# --- tables -------------------------------------------------------------------------------------------------
def prepare_table(cfg, component: str = "train"):
    """(rows with _row, split, _anomaly; AnomalySpec) from the training file."""
    from kiln.tasks.table.prepare import find_column, infer_feature_columns
    from kiln.tasks.common.tabular import read_table
    from kiln.tasks.table.spec import build_spec

    a = cfg.anomaly
    frame = read_table(cfg.data.path, component).frame
    for c in a.drop:
        find_column(frame, c, "drop", component)
    y = read_labels(frame, a, component)
    split = table_splits(y, cfg.data.val_split, cfg.data.test_split, cfg.seed, frame.get("split"), component)
    check_train(y, split, cfg.data.path, component)
    if ((split == "train") & (y == 1)).any():
        log.warning("%s: %d rows labelled anomalous in the train split are left out of training", component, int(((split == "train") & (y == 1)).sum()))
    rows = frame.reset_index().rename(columns={"index": "_row"})
    rows["split"], rows["_anomaly"] = split, y
    rows = rows[~((rows["split"] == "train") & (rows["_anomaly"] == 1))].reset_index(drop=True)
    skip = [c for c in ("_row", "split", "_anomaly", a.label) if c and c in rows.columns]
    feats = rows.drop(columns=skip)
    train = ((rows["split"] == "train") & (rows["_anomaly"] != 1)).to_numpy()
    columns = infer_feature_columns(feats, "__none__")
    tspec = build_spec(feats, columns, "__none__", "anomaly", train, None, np.zeros(0), drop=a.drop)
    for f in tspec.features:  # a reconstructed embedding can collapse to zero: every category is one-hot
        if f.encoding == "category" and not f.one_hot:
            f.one_hot, f.embed_dim, f.reason = True, 0, f"one-hot of {len(f.vocabulary)} values + out-of-vocabulary"
    if not tspec.used:
        raise DataError(received(component, "data", cfg.data.path, "no column is usable as a feature", "Check kiln audit FILE"))
    spec = AnomalySpec("table", a.label, a.anomaly_label, a.error, a.reduction, table=tspec.to_dict())
    return rows, spec


def table_inputs(rows: pd.DataFrame, spec: AnomalySpec) -> dict:
    from kiln.tasks.table.spec import encode_rows

    return encode_rows(rows, spec.table_spec)


# --- images -------------------------------------------------------------------------------------------------
def prepare_image(cfg, component: str = "train"):
    """(rows: _row, path, class, split, _anomaly; AnomalySpec) from an image folder; unreadable images left out."""
    from kiln.tasks.anomaly.images import image_flags, list_images, load

    a = cfg.anomaly
    frame = list_images(cfg.data.path, component)
    y = image_flags(frame, a.anomaly_label, component)
    channels = 1 if a.grey else 3
    _, ok = load(frame["path"].tolist(), 8, channels, component)  # readable? (small: only decodes)
    frame, y = frame[ok].reset_index(drop=True), y[ok]
    split = table_splits(y, cfg.data.val_split, cfg.data.test_split, cfg.seed, None, component)
    check_train(y, split, cfg.data.path, component)
    rows = frame.reset_index().rename(columns={"index": "_row"})
    rows["split"], rows["_anomaly"] = split, y
    spec = AnomalySpec("image", "class" if y.any() else None, a.anomaly_label, a.error, a.reduction, size=int(a.size), channels=channels)
    return rows, spec


def image_inputs(rows: pd.DataFrame, spec: AnomalySpec) -> np.ndarray:
    from kiln.tasks.anomaly.images import load

    return load(rows["path"].tolist(), spec.size, spec.channels, "data")[0]


# --- series -------------------------------------------------------------------------------------------------
def read_series_frame(path, spec_or_cfg, component: str) -> pd.DataFrame:
    """time (datetime64), the value columns as floats (gaps interpolated), and the label column as read."""
    from kiln.tasks.series.source import parse_times
    from kiln.tasks.table.prepare import find_column
    from kiln.tasks.common.tabular import missing_mask, read_table

    frame = read_table(path, component).frame
    time = spec_or_cfg.time
    find_column(frame, time, "time", component)
    times, _ = parse_times(frame[time], spec_or_cfg.time_format, component, time)
    out = pd.DataFrame({"time": times})
    columns = list(spec_or_cfg.columns)
    label = getattr(spec_or_cfg, "label", None)
    if not columns:
        skip = {time, label, "split", *getattr(spec_or_cfg, "drop", [])}
        for c in frame.columns:
            if c in skip:
                continue
            m = missing_mask(frame[c])
            v = pd.to_numeric(frame[c].where(~m, None), errors="coerce")
            if v.notna().sum() and not (v.isna() & ~m).any():
                columns.append(c)
        if not columns:
            raise DataError(received(component, "data", path, "no numeric value column besides time=", "Pass columns=COL,COL"))
    for c in columns:
        find_column(frame, c, "columns", component)
        m = missing_mask(frame[c])
        v = pd.to_numeric(frame[c].where(~m, None), errors="coerce")
        if (v.isna() & ~m).any():
            raise DataError(received(component, "columns", c, "it holds text; series values must be numbers", "Pick numeric columns"))
        out[c] = v.to_numpy(np.float64)
    if label:
        out["_label"] = frame[label].to_numpy()
    out = out[out["time"].notna()].sort_values("time", kind="stable").reset_index(drop=True)
    gaps = int(out[columns].isna().sum().sum())
    if gaps:
        log.info("%s: %d missing values interpolated linearly (ends carried)", component, gaps)
        out[columns] = out[columns].interpolate(limit_direction="both")
    out.attrs["columns"] = columns
    return out


def window_starts(n: int, window: int, stride: int) -> np.ndarray:
    return np.arange(0, max(0, n - window + 1), stride)


def windows(values: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """(N, window, C) float32 from (T, C) values."""
    idx = starts[:, None] + np.arange(window)[None, :]
    return values[idx].astype(np.float32)


def prepare_series(cfg, component: str = "train"):
    """(per-step frame with split and _anomaly; AnomalySpec); windows are cut by `series_windows`."""
    a = cfg.anomaly
    frame = read_series_frame(cfg.data.path, a, component)
    columns = frame.attrs["columns"]
    y = flags(pd.Series(frame["_label"]), a.label, a.anomaly_label, component) if a.label else np.zeros(len(frame), np.int64)
    n = len(frame)
    n_test, n_val = int(round(n * cfg.data.test_split)), int(round(n * cfg.data.val_split))
    split = np.array(["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test, dtype=object)
    check_train(y, split, cfg.data.path, component)
    window = a.window if a.window != "auto" else int(min(32, max(8, (n - n_val - n_test) // 20 // 4 * 4)))
    train = (split == "train") & (y != 1)
    values = frame[columns].to_numpy(np.float64)
    mean, std = values[train].mean(0), values[train].std(0)
    from kiln.tasks.series.audit import infer_freq, season_of

    spec = AnomalySpec("series", a.label, a.anomaly_label, a.error, a.reduction, time=a.time, time_format=a.time_format,
                       columns=list(columns), window=int(window), stride=int(a.stride),
                       mean=[float(v) for v in mean], std=[float(v) if v > 0 else 1.0 for v in std],
                       season=int(season_of(infer_freq(frame["time"]))))
    frame["split"], frame["_anomaly"] = split, y
    return frame.drop(columns=["_label"], errors="ignore"), spec


def series_windows(frame: pd.DataFrame, spec: AnomalySpec, split: str | None = None, stride: int | None = None):
    """(windows (N, W, C), labels (N,): 1 when any step is anomalous, -1 when unlabelled, start index (N,)) of one split."""
    values = frame[spec.columns].to_numpy(np.float64)
    starts = window_starts(len(frame), spec.window, stride or spec.stride)
    if split is not None:
        inside = frame["split"].to_numpy() == split  # splits are contiguous stretches: both ends inside is enough
        starts = starts[inside[starts] & inside[starts + spec.window - 1]] if len(starts) else starts
    lab = frame["_anomaly"].to_numpy() if "_anomaly" in frame.columns else np.zeros(len(frame), np.int64)
    bad = np.concatenate([[0], np.cumsum(lab == 1)])
    unknown = np.concatenate([[0], np.cumsum(lab == -1)])
    end = starts + spec.window
    y = np.where(bad[end] - bad[starts] > 0, 1, np.where(unknown[end] - unknown[starts] == spec.window, -1, 0)).astype(np.int64)
    return windows(values, starts, spec.window), y, starts


__all__ = ["AnomalySpec", "flags", "image_inputs", "prepare_image", "prepare_series", "prepare_table", "read_series_frame", "series_windows", "table_inputs"]
