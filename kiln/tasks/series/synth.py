"""Generated series for tests and the contract test: a daily cycle, a weekly bump, a trend and noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def hourly(n: int = 480, seed: int = 0, start: str = "2024-01-01", noise: float = 0.3, trend: float = 0.002) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 10 + trend * t + 3 * np.sin(2 * np.pi * t / 24) + 0.8 * np.sin(2 * np.pi * t / 168) + rng.normal(0, noise, n)
    return pd.DataFrame({"date": pd.date_range(start, periods=n, freq="h").strftime("%Y-%m-%d %H:%M"), "load": np.round(y, 4)})


def write_example(root: Path, seed: int = 0) -> tuple[Path, Path, dict]:
    """(training CSV, a history CSV of its last 48 rows, one TF Serving request) under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    frame = hourly(seed=seed)
    path, history = root / "load.csv", root / "history.csv"
    frame.to_csv(path, index=False)
    frame.iloc[-48:].to_csv(history, index=False)
    last = frame.iloc[-30:]
    request = {"instances": [{"history": last["load"].tolist(), "timestamps": last["date"].tolist()}]}
    return path, history, request


__all__ = ["hourly", "write_example"]
