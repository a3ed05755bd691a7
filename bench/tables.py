"""Tables bench: Kiln defaults vs scikit-learn linear and HistGradientBoosting on real tables shipped
inside packages (palmerpenguins, vega_datasets, scikit-learn's bundled diabetes / breast cancer /
wine), one `kiln train` per table and seed (the seed moves the split and the initial weights), then
100,000 rows x 30 columns: train time, CPU time, peak RSS and predict rows/s.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python bench/tables.py [--skip-large] [--skip-real] [--seeds 0,1,2] [--only cars,weather]
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


def real_tables(root: Path) -> list[tuple[str, Path, str]]:
    from palmerpenguins import load_penguins
    from vega_datasets import data

    out = []
    p = load_penguins()  # 344 rows, 19 missing cells, categories island / sex
    p.to_csv(root / "penguins.csv", index=False)
    out.append(("penguins (species)", root / "penguins.csv", "species"))
    cars = data.cars()  # 406 rows, missing mpg / horsepower, a date (Year), a category (Origin), a name
    cars["Year"] = cars["Year"].dt.strftime("%Y-%m-%d")
    cars.to_csv(root / "cars.csv", index=False)
    out.append(("cars (Miles_per_Gallon)", root / "cars.csv", "Miles_per_Gallon"))
    w = data.seattle_weather()  # 1,461 days: a date column, numbers, a 5-class target
    w["date"] = w["date"].dt.strftime("%Y-%m-%d")
    w.to_csv(root / "weather.csv", index=False)
    out.append(("seattle weather (weather)", root / "weather.csv", "weather"))
    from sklearn import datasets  # real measurements, without missing values or dates

    for name, load, target in (("diabetes", datasets.load_diabetes, "progression"), ("breast_cancer", datasets.load_breast_cancer, "diagnosis"),
                               ("wine", datasets.load_wine, "cultivar")):
        b = load(as_frame=True)
        f = b.frame.rename(columns={"target": target})
        if name != "diabetes":
            f[target] = np.asarray(b.target_names)[b.target]
        f.to_csv(root / f"{name}.csv", index=False)
        out.append((f"{name} ({target})", root / f"{name}.csv", target))
    return out


CPU = {"s": 0.0}


def run_kiln(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB of the children so far) of one kiln command; CPU["s"]: its CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    r = subprocess.run([KILN, *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"kiln {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return time.time() - started, after.ru_maxrss / 1024


def bench_real(root: Path, seeds: list[int], only: list[str] | None = None) -> list[dict]:
    rows = []
    for name, path, target in real_tables(root):
        if only and not any(o in name for o in only):
            continue
        for seed in seeds:
            run_dir = root / f"run-{path.stem}-{seed}"
            secs, _ = run_kiln(["train", f"data={path}", f"target={target}", f"run_dir={run_dir}", f"seed={seed}", "verbose=0",
                                "tensorboard=false"])
            m = json.loads((run_dir / "metrics.json").read_text())
            meta = json.loads((run_dir / "run.json").read_text())
            key = "accuracy" if "accuracy" in m["test"] else "r2"
            b = m["baselines"]["test"]
            rows.append({"table": name, "seed": seed, "rows": sum(meta["counts"].values()), "metric": key, "model": meta["model"],
                         "kiln": m["test"][key], "linear": b["linear"][key], "hgb": b["hist_gradient_boosting"][key], "dummy": b["dummy"][key],
                         "seconds": round(secs, 1), "cpu_s": round(CPU["s"], 1)})
            print(json.dumps(rows[-1]), flush=True)
    summary = pd.DataFrame(rows).groupby("table", sort=False)[["kiln", "linear", "hgb", "dummy"]].mean()
    summary["kiln/hgb"] = summary["kiln"] / summary["hgb"]
    print(f"mean test score over seeds {seeds}:\n{summary.round(4).to_string()}", flush=True)
    return rows


def large_table(n: int = 100_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(20):
        x = rng.normal(size=n)
        x[rng.random(n) < 0.05] = np.nan
        cols[f"x{i}"] = x
    for i in range(8):
        cols[f"k{i}"] = rng.choice([f"v{j}" for j in range(5 + 5 * i)], n)
    cols["when"] = (pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D")).strftime("%Y-%m-%d")
    z = np.nan_to_num(cols["x0"]) + np.nan_to_num(cols["x1"]) ** 2 - (cols["k0"] == "v1") + 0.5 * np.sin(np.nan_to_num(cols["x2"]) * 3)
    cols["label"] = np.where(z + rng.normal(0, 0.5, n) > 0.8, "yes", "no")
    return pd.DataFrame(cols)  # 20 numbers + 8 categories + 1 date + target = 30 columns


def bench_large(root: Path) -> dict:
    frame = large_table()
    path = root / "large.csv"
    frame.to_csv(path, index=False)
    run_dir = root / "run-large"
    secs, rss = run_kiln(["train", f"data={path}", "target=label", f"run_dir={run_dir}", "verbose=0", "tensorboard=false"])
    train_cpu = CPU["s"]
    m = json.loads((run_dir / "metrics.json").read_text())
    meta = json.loads((run_dir / "run.json").read_text())
    rows = root / "rows.csv"
    frame.drop(columns=["label"]).to_csv(rows, index=False)
    print(json.dumps({"train_wall_s": round(secs, 1), "train_cpu_s": round(train_cpu, 1), "peak_rss_mib": round(rss)}), flush=True)
    psecs, prss = run_kiln(["predict", str(run_dir), str(rows), f"out={root / 'pred.csv'}", "runtime=keras"])
    predict_cpu = CPU["s"]
    # the same command on 10 rows (its fixed cost: interpreter, TensorFlow, model load, first trace) and on
    # 1,000,000 rows (the 100,000 repeated ten times), so rows/s is shown with and without the start-up
    sizes = {}
    for n in (10, 1_000_000):
        path = root / f"rows{n}.csv"
        (frame.drop(columns=["label"]).iloc[:n] if n <= len(frame) else pd.concat([frame.drop(columns=["label"])] * (n // len(frame)))).to_csv(path, index=False)
        secs_n, _ = run_kiln(["predict", str(run_dir), str(path), f"out={root / 'pred_n.csv'}", "runtime=keras"])
        sizes[n] = (secs_n, CPU["s"])
        print(json.dumps({"predict_rows": n, "runtime": "keras", "wall_s": round(secs_n, 2), "cpu_s": round(CPU["s"], 2),
                          "rows_per_s": round(n / secs_n)}), flush=True)
    # the same three files through the run's ONNX export (runtime=onnx: onnxruntime, no TensorFlow import)
    esecs, _ = run_kiln(["export", str(run_dir), "format=onnx"])
    onnx = {}
    for n, path in ((len(frame), rows), (10, root / "rows10.csv"), (1_000_000, root / "rows1000000.csv")):
        secs_n, _ = run_kiln(["predict", str(run_dir), str(path), f"out={root / 'pred_o.csv'}", "runtime=onnx"])
        onnx[n] = (secs_n, CPU["s"])
        print(json.dumps({"predict_rows": n, "runtime": "onnx", "wall_s": round(secs_n, 2), "cpu_s": round(CPU["s"], 2),
                          "rows_per_s": round(n / secs_n)}), flush=True)
    a = pd.read_csv(root / "pred.csv", usecols=["prediction", "proba_yes"])
    run_kiln(["predict", str(run_dir), str(rows), f"out={root / 'pred_o.csv'}", "runtime=onnx"])
    b = pd.read_csv(root / "pred_o.csv", usecols=["prediction", "proba_yes"])
    same = float((a["prediction"] == b["prediction"]).mean())
    worst = float((a["proba_yes"] - b["proba_yes"]).abs().max())
    # predict rows/s inside the process (without the interpreter and TensorFlow start-up)
    code = ("import time,sys;from kiln.run import load_run;from kiln.tasks.base import task_of;import pandas as pd;"
            f"r=load_run({str(run_dir)!r});t=task_of(r.meta);f=pd.read_csv({str(rows)!r},dtype=str,keep_default_na=False);"
            "t.predict_outputs(r,f.iloc[:20000]);s=time.time();c=time.process_time();t.predict_outputs(r,f);"
            "print(len(f)/(time.time()-s),len(f)/(time.process_time()-c))")  # warmed up: the model traced once
    last = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    inproc, per_cpu = map(float, last.split())
    out = {"rows": len(frame), "columns": frame.shape[1], "model": meta["model"], "train_wall_s": round(secs, 1),
           "train_s_in_run": meta["train_seconds"], "train_cpu_s": round(train_cpu, 1), "peak_rss_mib": round(rss), "epochs": int(len(pd.read_csv(run_dir / "history.csv"))),
           "test_accuracy": m["test"]["accuracy"], "hgb_accuracy": m["baselines"]["test"]["hist_gradient_boosting"]["accuracy"],
           "predict_cli_s": round(psecs, 1), "predict_cli_rows_per_s": round(len(frame) / psecs), "predict_cli_cpu_s": round(predict_cpu, 1),
           "predict_rows_per_s": round(inproc), "predict_rows_per_cpu_s": round(per_cpu),
           "predict_cli_10_rows_s": round(sizes[10][0], 2), "predict_cli_1m_rows_s": round(sizes[1_000_000][0], 1),
           "predict_cli_1m_rows_per_s": round(1_000_000 / sizes[1_000_000][0]),
           "predict_cli_100k_rows_per_s_beyond_startup": round(len(frame) / max(1e-9, psecs - sizes[10][0])),
           "export_onnx_s": round(esecs, 1), "predict_onnx_100k_s": round(onnx[len(frame)][0], 2),
           "predict_onnx_100k_rows_per_s": round(len(frame) / onnx[len(frame)][0]), "predict_onnx_100k_cpu_s": round(onnx[len(frame)][1], 1),
           "predict_onnx_10_rows_s": round(onnx[10][0], 2), "predict_onnx_1m_rows_per_s": round(1_000_000 / onnx[1_000_000][0]),
           "onnx_vs_keras_100k": round(psecs / onnx[len(frame)][0], 2), "onnx_same_prediction": same, "onnx_max_proba_diff": worst}
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds: each moves the split and the initial weights")
    ap.add_argument("--only", default=None, help="comma-separated parts of table names")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not a.skip_real:
            bench_real(root, [int(x) for x in a.seeds.split(",")], a.only.split(",") if a.only else None)
        if not a.skip_large:
            bench_large(root)
