"""Anomaly bench: Kiln's default autoencoder vs PCA reconstruction error, Isolation Forest and LOF (scikit-learn)
on the same split, on real data shipped inside dependencies, plus the default threshold's false-positive rate on
held-out normal rows.

Cases (labels: 1 anomaly, 0 normal; anomalies go to val and test only):
  wdbc         scikit-learn's breast cancer table: benign rows normal, 60 seeded malignant rows anomalous
               (half in val, half in test; val and test each hold 25 % of the normal rows)
  digits-K     scikit-learn's 8x8 digits as 64-column rows: digit K normal, 100 seeded other digits anomalous
               (split as wdbc)
  co2          statsmodels' weekly Mauna Loa CO2 (2,284 weeks): 12 spikes and 2 level shifts injected after the
               training stretch, windows scored (the series is real, the faults are injected and labelled)
  digit-images-K  the same digits as 8x8 grey PNG files in a folder (normal/ and anomaly/): the image path, conv2d
  fair-fpr     statsmodels' fair table (6,366 rows, no labels): the default rule q0.99 placed on val, FPR on test

    .venv/bin/python bench/anomaly.py [--seeds 0] [--only wdbc,co2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def wdbc(root: Path, seed: int):
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer(as_frame=True)
    f = d.data.copy()
    f.columns = [c.replace(" ", "_") for c in f.columns]
    f["label"] = (d.target == 0).astype(int)  # malignant
    bad = f[f["label"] == 1].sample(60, random_state=seed)
    f = pd.concat([f[f["label"] == 0], bad]).sample(frac=1, random_state=seed)
    f.to_csv(root / "wdbc.csv", index=False)
    return {"data": str(root / "wdbc.csv"), "label": "label", "val_split": 0.25, "test_split": 0.25}


def digits(k: int):
    def make(root: Path, seed: int):
        from sklearn.datasets import load_digits

        d = load_digits()
        f = pd.DataFrame(d.data, columns=[f"p{i}" for i in range(64)])
        f["label"] = (d.target != k).astype(int)
        bad = f[f["label"] == 1].sample(100, random_state=seed)
        f = pd.concat([f[f["label"] == 0], bad]).sample(frac=1, random_state=seed)
        f.to_csv(root / f"digits{k}.csv", index=False)
        return {"data": str(root / f"digits{k}.csv"), "label": "label", "val_split": 0.25, "test_split": 0.25}
    return make


def digit_images(k: int):
    def make(root: Path, seed: int):
        from PIL import Image
        from sklearn.datasets import load_digits

        d = load_digits()
        rng = np.random.default_rng(seed)
        others = rng.choice(np.flatnonzero(d.target != k), 100, replace=False)
        for name, idx in (("normal", np.flatnonzero(d.target == k)), ("anomaly", others)):
            (root / "digits" / name).mkdir(parents=True, exist_ok=True)
            for i in idx:  # 17 grey levels (0-16) -> 0-255
                Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).save(root / "digits" / name / f"{i}.png")
        return {"data": str(root / "digits"), "size": 8, "grey": True, "val_split": 0.25, "test_split": 0.25}
    return make


def co2(root: Path, seed: int):
    import statsmodels.api as sm

    s = sm.datasets.co2.load_pandas().data["co2"].interpolate(limit_direction="both")
    rng = np.random.default_rng(seed)
    v, label = s.to_numpy().copy(), np.zeros(len(s), int)
    start = int(0.7 * len(v))  # faults only in val and test: the training stretch stays normal
    sd = np.std(np.diff(v))
    for i in rng.choice(np.arange(start, len(v) - 30), 12, replace=False):
        v[i] += rng.choice([-1, 1]) * 6 * sd
        label[i] = 1
    for i in rng.choice(np.arange(start, len(v) - 30), 2, replace=False):
        v[i:i + 8] += 4 * sd
        label[i:i + 8] = 1
    f = pd.DataFrame({"week": s.index.strftime("%Y-%m-%d"), "co2": v.round(3), "label": label})
    f.to_csv(root / "co2.csv", index=False)
    return {"data": str(root / "co2.csv"), "time": "week", "label": "label", "val_split": 0.15, "test_split": 0.15}


def fair(root: Path, seed: int):
    import statsmodels.api as sm

    sm.datasets.fair.load_pandas().data.to_csv(root / "fair.csv", index=False)
    return {"data": str(root / "fair.csv"), "val_split": 0.2, "test_split": 0.2}


CASES = {"wdbc": wdbc, "digits-0": digits(0), "digits-1": digits(1), "digits-2": digits(2), "co2": co2, "fair-fpr": fair,
         "digit-images-0": digit_images(0), "digit-images-1": digit_images(1), "digit-images-2": digit_images(2)}


def main() -> None:
    import kiln

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--only", default="")
    ap.add_argument("--model", default="auto", help="model= for every case (auto: dense for tables, conv1d for series)")
    args = ap.parse_args()
    only = [c for c in args.only.split(",") if c] or list(CASES)
    rows = []
    for name in only:
        for seed in (int(s) for s in args.seeds.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                keys = CASES[name](Path(tmp), seed)
                run = kiln.train(task="anomaly", run_dir=str(Path(tmp) / "run"), seed=seed,
                                 train={"verbose": 0, "tensorboard": False, "doctor": False}, evaluate={"report": False}, model=args.model, **keys)
                m = json.loads((run.path / "metrics.json").read_text())
                t = m["test"]
                base = {b: v.get("roc_auc") for b, v in (m.get("baselines") or {}).get("test", {}).items()}
                row = {"case": name, "seed": seed, "model": run.meta["model"], "rule": m["threshold"]["rule"], "n_test": t["n"],
                       "anomalies": t["anomalies"], "kiln_roc_auc": t.get("roc_auc"), "kiln_pr_auc": t.get("pr_auc"),
                       **{f"{b}_roc_auc": v for b, v in base.items()}, "val_fpr": m["threshold"].get("fpr"), "test_fpr": t.get("fpr"),
                       "seconds": run.meta["train_seconds"]}
                print(json.dumps(row), flush=True)
                rows.append(row)
    from common import table

    cols = list(dict.fromkeys(k for r in rows for k in r))
    print(table([tuple("" if r.get(c) is None else round(r[c], 4) if isinstance(r.get(c), float) else r[c] for c in cols) for r in rows], tuple(cols)))


if __name__ == "__main__":
    main()
