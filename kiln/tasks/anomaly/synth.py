"""Tiny generated anomaly data: a table of correlated readings with a category and a few broken rows, and a
multichannel sensor series with injected spikes and level shifts. For tests, the contract test and docs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def make_table(n: int = 400, anomalies: int = 20, seed: int = 0) -> pd.DataFrame:
    """Columns: a, b (b ~ 2a), c (a + noise), kind (category tied to a's sign), label (1 for an anomaly)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, n + anomalies)
    b = 2 * a + rng.normal(0, 0.1, len(a))
    c = a + rng.normal(0, 0.2, len(a))
    kind = np.where(a > 0, "up", "down").astype(object)
    bad = np.arange(n, n + anomalies)
    b[bad] = -2 * a[bad] + rng.normal(0, 0.1, anomalies)  # the relation breaks, each value stays in range
    kind[bad[::2]] = np.where(a[bad[::2]] > 0, "down", "up")
    label = np.r_[np.zeros(n, int), np.ones(anomalies, int)]
    order = rng.permutation(len(a))
    return pd.DataFrame({"a": a.round(4), "b": b.round(4), "c": c.round(4), "kind": kind, "label": label}).iloc[order].reset_index(drop=True)


def make_series(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Hourly time, two channels (a daily sine and its lagged echo) with noise; spikes and a stuck stretch labelled 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, n)
    y = 0.5 * np.sin(2 * np.pi * (t - 3) / 24) + rng.normal(0, 0.1, n)
    label = np.zeros(n, int)
    for s in rng.choice(np.arange(int(0.75 * n), n - 10), 4, replace=False):
        x[s] += 3.0
        label[s] = 1
    s = int(0.9 * n)
    y[s:s + 12] = y[s]
    label[s:s + 12] = 1
    time = pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M")
    return pd.DataFrame({"time": time, "x": x.round(4), "y": y.round(4), "label": label})


def write_example(root: Path, seed: int = 0) -> tuple[Path, dict]:
    root.mkdir(parents=True, exist_ok=True)
    frame = make_table(300, 16, seed)
    path = root / "readings.csv"
    frame.to_csv(path, index=False)
    return path, frame.drop(columns=["label"]).iloc[0].to_dict()



def write_images(root: Path, normal: int = 60, anomalies: int = 10, size: int = 16, seed: int = 0) -> Path:
    """root/normal/*.png: smooth horizontal gradients; root/anomaly/*.png: the same with a bright square pasted in."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, n in (("normal", normal), ("anomaly", anomalies)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            ramp = np.linspace(rng.uniform(0, 80), rng.uniform(150, 255), size)
            img = np.repeat(np.tile(ramp, (size, 1))[:, :, None], 3, axis=2) + rng.normal(0, 4, (size, size, 3))
            if name == "anomaly":
                r, c = rng.integers(0, size - 6, 2)
                img[r:r + 6, c:c + 6] = [255, 20, 20]
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / name / f"{i:03d}.png")
    return root


__all__ = ["make_series", "make_table", "write_example", "write_images"]
