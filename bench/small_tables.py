"""Small tables bench: a real table halved as a new user would (seeded 50/50 split), `kiln train` on the
training half with every default, scored on the held-out half beside scikit-learn's linear model and
HistGradientBoosting fitted on the same training half (the same rows Kiln was given).

Accuracy is argmax of the probabilities for Kiln and the peers alike (the same rule; Kiln's own two-class
`prediction` column applies the run's val-chosen threshold, reported apart as `kiln_threshold_acc`); RMSE for
regression. Each seed moves the 50/50 split and Kiln's initial weights.

    .venv/bin/pip install -e ".[bench]"
    nice .venv/bin/python bench/small_tables.py [--seeds 0,1,2] [--only cars,breast] [--set model=tabm ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

KILN = str(Path(sys.executable).parent / "kiln")


def small_tables() -> list[tuple[str, pd.DataFrame, str, str]]:
    """(name, frame, target, task): real tables shipped inside packages, whole; the bench halves them."""
    from palmerpenguins import load_penguins
    from sklearn import datasets
    from vega_datasets import data

    cars = data.cars().dropna(subset=["Miles_per_Gallon"])  # 398 rows: a date (Year), a category (Origin), a name
    cars["Year"] = cars["Year"].dt.strftime("%Y-%m-%d")
    out = [("cars", cars.reset_index(drop=True), "Miles_per_Gallon", "regression")]
    b = datasets.load_diabetes(as_frame=True)
    out.append(("diabetes", b.frame.rename(columns={"target": "progression"}), "progression", "regression"))
    b = datasets.load_breast_cancer(as_frame=True)
    f = b.frame.rename(columns={"target": "diagnosis"})
    f["diagnosis"] = np.asarray(b.target_names)[b.target]
    out.append(("breast_cancer", f, "diagnosis", "classification"))
    out.append(("penguins", load_penguins().dropna(subset=["species"]).reset_index(drop=True), "species", "classification"))
    return out


def halves(frame: pd.DataFrame, target: str, task: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    strat = frame[target] if task == "classification" else pd.qcut(frame[target].rank(method="first"), 5, labels=False)
    train, test = train_test_split(frame, test_size=0.5, random_state=seed, stratify=strat)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def peers(train: pd.DataFrame, test: pd.DataFrame, target: str, task: str, seed: int) -> dict:
    """Test score of RidgeCV / LogisticRegression and HistGradientBoosting on the training half (every column but
    the target and the car name; dates as a year number), the usual scikit-learn pipelines."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    def frame(f):
        x = f.drop(columns=[target] + [c for c in ("Name",) if c in f.columns]).copy()
        for c in x.columns:
            if c == "Year":
                x[c] = pd.to_datetime(x[c]).dt.year.astype(float)
        return x

    xtr, xte = frame(train), frame(test)
    cat = [c for c in xtr.columns if not pd.api.types.is_numeric_dtype(xtr[c])]
    num = [c for c in xtr.columns if c not in cat]
    lin = ColumnTransformer([("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
                             ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), cat)])
    tree = ColumnTransformer([("num", "passthrough", num),
                              ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan), cat)])
    mask = [False] * len(num) + [True] * len(cat)
    if task == "classification":
        models = {"linear": make_pipeline(lin, LogisticRegression(max_iter=5000)),
                  "hgb": make_pipeline(tree, HistGradientBoostingClassifier(categorical_features=mask, random_state=seed))}
    else:
        models = {"linear": make_pipeline(lin, RidgeCV(alphas=np.logspace(-3, 3, 13))),
                  "hgb": make_pipeline(tree, HistGradientBoostingRegressor(categorical_features=mask, random_state=seed))}
    y, yt = train[target].to_numpy(), test[target].to_numpy()
    out = {}
    for name, m in models.items():
        p = m.fit(xtr, y).predict(xte)
        out[name] = float((p == yt).mean()) if task == "classification" else float(np.sqrt(np.mean((p - yt) ** 2)))
    return out


def run_kiln(args: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    r = subprocess.run([KILN, *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"kiln {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.time() - started, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def bench(root: Path, seeds: list[int], only: list[str] | None, extra: list[str]) -> pd.DataFrame:
    rows = []
    for name, frame, target, task in small_tables():
        if only and not any(o in name for o in only):
            continue
        for seed in seeds:
            train, test = halves(frame, target, task, seed)
            tr, te = root / f"{name}-{seed}-train.csv", root / f"{name}-{seed}-test.csv"
            train.to_csv(tr, index=False)
            test.drop(columns=[target]).to_csv(te, index=False)
            run_dir = root / f"run-{name}-{seed}"
            secs, cpu = run_kiln(["train", f"data={tr}", f"target={target}", f"run_dir={run_dir}", f"seed={seed}", "verbose=0",
                                  "tensorboard=false", *extra])
            run_kiln(["predict", str(run_dir), str(te), f"out={root / 'pred.csv'}", "runtime=keras"])
            pred = pd.read_csv(root / "pred.csv")
            meta = json.loads((run_dir / "run.json").read_text())
            m = json.loads((run_dir / "metrics.json").read_text())
            yt = test[target].to_numpy()
            row = {"table": name, "seed": seed, "train_rows": len(train), "model": meta["model"]}
            if task == "classification":
                proba = pred[[c for c in pred.columns if c.startswith("proba_")]]
                classes = [c.removeprefix("proba_") for c in proba.columns]
                row["kiln"] = float((np.asarray(classes)[proba.to_numpy().argmax(1)] == yt.astype(str)).mean())
                row["kiln_threshold_acc"] = float((pred["prediction"].astype(str).to_numpy() == yt.astype(str)).mean())
            else:
                row["kiln"] = float(np.sqrt(np.mean((pred["prediction"].to_numpy() - yt) ** 2)))
            row.update(peers(train, test, target, task, seed))
            row.update(metric="accuracy" if task == "classification" else "rmse", seconds=round(secs, 1), cpu_s=round(cpu, 1),
                       train_seconds=meta.get("train_seconds"), verdict=(m.get("verdict") or {}).get("line"))
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = pd.DataFrame(rows)
    s = out.groupby("table", sort=False)[["kiln", "linear", "hgb", "seconds"]].mean()
    s["metric"] = out.groupby("table", sort=False)["metric"].first()
    acc = s["metric"] == "accuracy"
    s["kiln_vs_hgb_%"] = np.where(acc, 100 * (s["kiln"] - s["hgb"]), 100 * (s["hgb"] - s["kiln"]) / s["hgb"])  # + is better
    s["beats_linear"] = np.where(acc, s["kiln"] > s["linear"], s["kiln"] < s["linear"])
    print(f"mean over seeds {seeds} ({' '.join(extra) or 'defaults'}):\n{s.round(4).to_string()}", flush=True)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--only", default=None, help="comma-separated parts of table names")
    ap.add_argument("--set", nargs="*", default=[], help="extra key=value for kiln train (a variant to compare)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench(Path(tmp), [int(x) for x in a.seeds.split(",")], a.only.split(",") if a.only else None, a.set)
