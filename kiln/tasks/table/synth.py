"""Tiny generated tables with the mess real ones have (missing cells, dates, categories, an id),
for tests, the contract test and the bench."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def make_table(n: int = 600, seed: int = 0, task: str = "classification", classes: int = 2) -> pd.DataFrame:
    """Columns: id, age (number, 10% missing), city (category), joined (date), flag (boolean), note
    (constant), label: a target that depends on age, city and the joined month."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n)
    city = rng.choice(["Paris", "Lyon", "Nice", "Lille"], n, p=[0.4, 0.3, 0.2, 0.1])
    joined = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 730, n), unit="D")
    flag = rng.choice(["yes", "no"], n)
    effect = {"Paris": 1.0, "Lyon": -0.5, "Nice": 0.3, "Lille": -1.0}
    z = (age - 40) / 12 + np.vectorize(effect.get)(city) + np.sin(2 * np.pi * joined.month.to_numpy() / 12) + 0.5 * (flag == "yes")
    if task == "regression":
        label = np.round(10 * z + rng.normal(0, 1, n) + 50, 3)
    else:
        cuts = np.quantile(z, np.linspace(0, 1, classes + 1)[1:-1])
        label = np.array([f"c{i}" for i in np.digitize(z + rng.normal(0, 0.3, n), cuts)])
    ages = np.array([f"{a:.1f}" for a in age], dtype=object)
    ages[rng.random(n) < 0.1] = ""
    return pd.DataFrame({"id": [f"u{i:05d}" for i in range(n)], "age": ages, "city": city, "joined": joined.strftime("%Y-%m-%d"),
                         "flag": flag, "note": "same", "label": label})


def write_example(root: Path, seed: int = 0) -> tuple[Path, dict]:
    root.mkdir(parents=True, exist_ok=True)
    frame = make_table(300, seed)
    path = root / "table.csv"
    frame.to_csv(path, index=False)
    row = frame.drop(columns=["label"]).iloc[0].to_dict()
    return path, row


__all__ = ["make_table", "write_example"]
