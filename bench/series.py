"""Series bench: every Kiln model family beside naive, seasonal naive, drift and Holt-Winters on the same
rolling test windows of real series shipped inside packages (weekly CO2 at Mauna Loa from statsmodels,
hourly Seattle temperatures from vega_datasets); then 1,000 series x 1,000 hourly steps (a million rows):
peak RSS and windows/s, beside what materialised windows would take.

    .venv/bin/pip install vega-datasets==0.9.0
    nice .venv/bin/python bench/series.py [--models nbeats,dense,...] [--skip-real] [--skip-large]
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

FAMILIES = ("auto", "nbeats", "dense", "lstm", "gru", "cnn1d")  # auto: the defaults (model=auto)


def real_series(root: Path) -> list[tuple[str, Path, dict]]:
    from statsmodels.datasets import co2
    from vega_datasets import local_data

    d = co2.load_pandas().data  # 2,284 weeks 1958-2001, 59 missing values
    d = d.reset_index().rename(columns={"index": "week"})
    d["week"] = d["week"].dt.strftime("%Y%m%d")  # compact integers, as the issue asks Kiln to read
    d.to_csv(root / "co2.csv", index=False)
    s = local_data.seattle_temps()  # 8,759 hours of 2010
    s["date"] = s["date"].dt.strftime("%Y/%m/%d %H:%M")
    s.to_csv(root / "seattle.csv", index=False)
    return [("co2 weekly (statsmodels)", root / "co2.csv", {"time": "week", "target": "co2", "horizon": 52, "fill": "interpolate"}),
            ("seattle hourly temps (vega)", root / "seattle.csv", {"time": "date", "target": "temp", "horizon": 24})]


def bench_real(models: list[str], root: Path) -> list[dict]:
    import kiln

    rows = []
    for name, path, keys in real_series(root):
        for model in models:
            t0, c0 = time.time(), time.process_time()
            run = kiln.train(data=str(path), model=model, run_dir=str(root / f"{path.stem}-{model}"), seed=0,
                             train={"verbose": 0, "tensorboard": False}, evaluate={"report": False},
                             **{f"series.{k}": v for k, v in keys.items()})
            m = json.loads((run.path / "metrics.json").read_text())["test"]
            chosen = json.loads((run.path / "run.json").read_text()).get("model")
            row = {"data": name, "model": model if model != "auto" else f"auto ({chosen})", "mase": m["mase"], "smape": m["smape"], "windows": m["windows"],
                   "skill": m["skill_vs_seasonal_naive"], "wall_s": round(time.time() - t0, 1),
                   "cpu_s": round(time.process_time() - c0, 1), "epochs": len(run.history)}
            for b, bm in m["baselines"].items():
                row[b] = bm.get("mase")
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def write_large(path: Path, series: int = 1000, steps: int = 1000) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(steps)
    level = rng.uniform(5, 50, series)[:, None]
    y = level * (1 + 0.2 * np.sin(2 * np.pi * (t[None] + rng.integers(0, 24, series)[:, None]) / 24)) + rng.normal(0, 1, (series, steps))
    times = pd.date_range("2020-01-01", periods=steps, freq="h").strftime("%Y-%m-%dT%H:%M")
    frame = pd.DataFrame({"id": np.repeat([f"s{i}" for i in range(series)], steps), "time": np.tile(times, series),
                          "y": np.round(y.ravel(), 3)})
    frame.to_csv(path, index=False)


def large_child(path: str, out: str) -> None:
    """In its own process, so ru_maxrss is this run's: train 2 epochs on a million rows. The peak after
    importing TensorFlow and Keras is taken first, so the growth the series itself causes is printed too."""
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import kiln

    import_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

    t0, c0 = time.time(), time.process_time()
    run = kiln.train(data=path, **{"series.time": "time", "series.target": "y", "series.series": "id", "series.horizon": 24,
                                   "series.batch_rows": 1024, "series.baselines": False}, model="dense", epochs=2, patience=0,
                     run_dir=out, seed=0, train={"verbose": 0, "tensorboard": False}, evaluate={"report": False})
    meta = json.loads((run.path / "run.json").read_text())
    hist = run.history
    n = meta["windows"]["train"]
    fit_s = float(hist["epoch_seconds"].sum())
    spec = meta["series"]
    print(json.dumps({"rows": int(sum(meta["counts"].values())), "series": len(spec["scale"]), "train_windows": n, "epochs": len(hist), "fit_s": round(fit_s, 1),
                      "windows_per_s": round(n * len(hist) / fit_s), "wall_s": round(time.time() - t0, 1),
                      "cpu_s": round(time.process_time() - c0, 1), "import_rss_mb": import_mb,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                      "materialised_windows_mb": round(n * (spec["lookback"] + spec["horizon"]) * 4 / 2**20),
                      "test_mase": json.loads((run.path / "metrics.json").read_text())["test"]["mase"]}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(FAMILIES))
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--rows", default="1000000", help="rows of the large run(s), comma-separated (1,000 per series)")
    args = ap.parse_args()
    if args.child:
        return large_child(*args.child)
    root = Path(tempfile.mkdtemp(prefix="kiln-series-bench-"))
    if not args.skip_real:
        rows = bench_real(args.models.split(","), root)
        table = pd.DataFrame(rows)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        for data, g in table.groupby("data"):
            best = g.loc[g["mase"].idxmin()]
            print(f"{data}: best Kiln {best['model']} MASE {best['mase']:.3f}; Holt-Winters {g['holt_winters'].iloc[0]:.3f} "
                  f"(ratio {best['mase'] / g['holt_winters'].iloc[0]:.2f}); seasonal naive {g['seasonal_naive'].iloc[0]:.3f}")
    if not args.skip_large:
        for rows in [int(r) for r in args.rows.split(",")]:
            path = root / f"large-{rows}.csv"
            write_large(path, series=rows // 1000)
            subprocess.run([sys.executable, __file__, "--child", str(path), str(root / f"large-{rows}-run")], check=True)


if __name__ == "__main__":
    main()
