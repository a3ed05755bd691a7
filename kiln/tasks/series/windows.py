"""Leak-free windows: the chronological split of each series, the spec the model is built from (scalers
fitted on the training stretch only) and lazy tf.data windows.

A window starting at row s sees rows s .. s+L-1 (target first, then covariates) and predicts the target
of rows s+L .. s+L+H-1. A split's windows are those whose *targets* lie wholly in that split; their
inputs may reach back into earlier stretches (the past is known at the origin). Windows are never
materialised: a dataset of start indices is shuffled and batched, and each batch is gathered from the
one value array, so memory stays bounded by that array however many windows there are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from kiln.errors import DataError, received

SPLITS = {"train": 0, "val": 1, "test": 2}


@dataclass
class SeriesSpec:
    time: str
    target: str
    horizon: int
    lookback: int
    season: int
    freq: str
    covariates: list[str] = field(default_factory=list)
    series_column: str | None = None
    time_format: str | None = None
    quantiles: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)  # per channel, training stretch only
    std: list[float] = field(default_factory=list)
    scale: dict = field(default_factory=dict)  # series id -> in-sample seasonal-naive MAE (MASE denominator)
    fill: str = "none"
    val_len: int = 0
    test_len: int = 0
    lookback_reason: str = ""
    season_reason: str = ""

    @property
    def channels(self) -> int:
        return 1 + len(self.covariates)

    @property
    def columns(self) -> list[str]:
        return ["y", *self.covariates]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SeriesSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def auto_lookback(season: int, horizon: int) -> tuple[int, str]:
    lb = min(512, max(3 * season, 2 * horizon, 8))
    return lb, f"three seasons of {season} steps, at least two horizons of {horizon}, at most 512"


def assign_splits(frame: pd.DataFrame, horizon: int, lookback: int, val_split: float, test_split: float,
                  component: str, lookback_auto: bool) -> tuple[pd.DataFrame, int, int, int]:
    """A `split` column (categorical train | val | test, the last stretches of every series), and the lengths used.
    The stretches are sized on the shortest series: val and test each hold at least one horizon."""
    sizes = frame.groupby("series", sort=False).size()
    n = int(sizes.min())
    test_len = max(horizon, int(round(n * test_split))) if test_split > 0 else 0
    val_len = max(horizon, int(round(n * val_split))) if val_split > 0 else 0
    train_len = n - test_len - val_len
    if lookback_auto and train_len - horizon < lookback + 8:
        lookback = max(min(lookback, (train_len - horizon) // 2), 1)
    if n < lookback + horizon:
        raise DataError(received(component, "data", f"{n} rows", f"a series needs at least lookback + horizon = {lookback} + {horizon} "
                                 f"rows{' (series ' + str(sizes.idxmin()) + ')' if len(sizes) > 1 else ''}",
                                 "Use a smaller lookback= or horizon=, or more history"))
    if train_len < lookback + horizon:
        raise DataError(received(component, "horizon", horizon, f"{n} rows leave {train_len} for training after val {val_len} and test "
                                 f"{test_len} (each at least one horizon), fewer than lookback + horizon = {lookback + horizon}",
                                 "Use a shorter horizon, a smaller lookback, or more history"))
    pos = frame.groupby("series", sort=False).cumcount(ascending=False).to_numpy()  # steps from the end of its series
    frame["split"] = split_codes(pos, val_len, test_len)  # in place: the frame is the gridded copy, not the file's
    return frame, lookback, val_len, test_len


def split_codes(pos: np.ndarray, val_len: int, test_len: int) -> pd.Categorical:
    """The split of each row from its steps before the end of its series, as a categorical of int8 codes
    (SPLITS): one byte a row where an array of "train" / "val" / "test" strings took a pointer each, with
    string compares (~200 MB at a million rows); `== "train"` still works on it (the spine counts that way)."""
    codes = np.where(pos < test_len, SPLITS["test"], np.where(pos < test_len + val_len, SPLITS["val"], SPLITS["train"])).astype(np.int8)
    return pd.Categorical.from_codes(codes, categories=list(SPLITS))


def split_of(frame: pd.DataFrame) -> np.ndarray:
    """(T,) int8 SPLITS codes of the frame's split column (categorical, or plain names)."""
    col = frame["split"]
    if isinstance(col.dtype, pd.CategoricalDtype) and list(col.cat.categories) == list(SPLITS):
        return col.cat.codes.to_numpy(np.int8)
    return col.map(SPLITS).to_numpy(np.int8)


def seasonal_scale(y: np.ndarray, season: int) -> float:
    """Mean |y_t - y_{t-m}| over the training stretch (m=1 when the stretch is shorter or that is zero)."""
    for m in (season, 1):
        if len(y) > m:
            d = np.abs(y[m:] - y[:-m])
            d = d[np.isfinite(d)]
            if len(d) and d.mean() > 0:
                return float(d.mean())
    return 1.0


def fit_scalers(frame: pd.DataFrame, columns: list[str]) -> tuple[list[float], list[float]]:
    train = frame.loc[split_of(frame) == SPLITS["train"], columns].to_numpy(np.float64)
    mean, std = np.nanmean(train, 0), np.nanstd(train, 0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return [float(v) for v in mean], [float(v) for v in std]


class Windows:
    """Start indices of every usable window of a frame (rows grouped by series, in time order)."""

    def __init__(self, frame: pd.DataFrame, spec: SeriesSpec):
        self.values = frame[spec.columns].to_numpy(np.float32)  # (T, C)
        self.lookback, self.horizon = spec.lookback, spec.horizon
        codes, names = pd.factorize(frame["series"], sort=False)  # ints, not a fresh Python string per row
        self.series = np.asarray(names, dtype=object)[codes]  # (T,) references to one string per series
        self.split = split_of(frame) if "split" in frame else np.full(len(frame), SPLITS["test"], np.int8)
        bad = np.isnan(self.values).any(1)
        self._bad = np.concatenate([[0], np.cumsum(bad)])
        change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        self.bounds = np.concatenate([[0], change, [len(frame)]])

    def starts(self, splits=("train",), last_per_series: int | None = None) -> np.ndarray:
        """Starts of windows whose targets lie in `splits`, with no missing value inside; optionally only
        the last `last_per_series` of each series (evenly spaced when fewer than all)."""
        L, H = self.lookback, self.horizon
        want = np.array([SPLITS[s] for s in splits])
        out = []
        for a, b in zip(self.bounds[:-1], self.bounds[1:]):
            s = np.arange(a, b - L - H + 1)
            if not len(s):
                continue
            first, last = self.split[s + L], self.split[s + L + H - 1]
            ok = np.isin(first, want) & np.isin(last, want) & (self._bad[s + L + H] - self._bad[s] == 0)
            s = s[ok]
            if last_per_series and len(s) > last_per_series:
                s = s[np.unique(np.linspace(0, len(s) - 1, last_per_series).round().astype(int))]
            out.append(s)
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)

    def arrays(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inputs (N, L, C), targets (N, H)) for `starts`, gathered with numpy (evaluation-sized sets)."""
        x = self.values[starts[:, None] + np.arange(self.lookback)]
        return x, self.targets(starts)

    def targets(self, starts: np.ndarray) -> np.ndarray:
        """(N, H) targets of the windows at `starts`."""
        return self.values[starts[:, None] + self.lookback + np.arange(self.horizon), 0]

    def dataset(self, starts: np.ndarray, batch: int, training: bool, seed: int = 0):
        """tf.data of (inputs (B, L, C), targets (B, H)) gathered lazily per batch."""
        import tensorflow as tf

        L, H = self.lookback, self.horizon
        values = tf.constant(self.values)
        xi, yi = tf.range(L, dtype=tf.int64), tf.range(L, L + H, dtype=tf.int64)
        if training:
            ds = shuffled(starts, seed)
        else:
            ds = tf.data.Dataset.from_tensor_slices(starts)

        def gather(s):
            return tf.gather(values, s[:, None] + xi), tf.gather(values[:, 0], s[:, None] + yi)

        return ds.batch(batch).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def shuffled(starts: np.ndarray, seed: int):
    """The starts in a fresh order each pass, from one permuted copy of the (N,) index: a shuffle buffer of N scalar
    elements held ~300 bytes each (~210 MB of a million-row fit for 5.6 MB of indices). Seeded and reproducible:
    pass k of a run draws the same order on every machine."""
    import tensorflow as tf

    index = tf.constant(starts, tf.int64)
    draw = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)

    @tf.autograph.experimental.do_not_convert
    def permute(r):
        return tf.random.experimental.stateless_shuffle(index, seed=tf.stack([r, tf.constant(seed, tf.int64)]))

    ds = draw.map(permute).flat_map(tf.data.Dataset.from_tensor_slices)
    return ds.apply(tf.data.experimental.assert_cardinality(len(starts)))  # as from_tensor_slices would say


__all__ = ["SPLITS", "SeriesSpec", "Windows", "assign_splits", "auto_lookback", "fit_scalers", "seasonal_scale", "shuffled", "split_codes", "split_of"]
