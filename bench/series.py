"""Series bench: every Kiln model family beside naive, seasonal naive, drift and Holt-Winters on the same
rolling test windows of real series shipped inside packages (weekly CO2 at Mauna Loa from statsmodels,
hourly Seattle temperatures from vega_datasets); then 1,000 series x 1,000 hourly steps (a million rows):
peak RSS and windows/s, beside what materialised windows would take.

    .venv/bin/pip install vega-datasets==0.9.0
    nice .venv/bin/python bench/series.py [--models nbeats,dense,...] [--skip-real] [--skip-large]
    nice .venv/bin/python bench/series.py --late [--only sunspots]   # 7 statsmodels series, late origins, refitted peers
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

LATE_ORIGINS = 6  # late origins per series, never trained on


def package_series(root: Path) -> list[tuple[str, Path, dict]]:
    """Real monthly, quarterly, weekly and yearly series shipped inside statsmodels, written as a user would have them
    (plain years, year-months, year-quarters, compact dates), with their horizons; CO2 weekly keeps its 59 missing weeks."""
    import statsmodels.api as sm

    mons = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    e = sm.datasets.elnino.load_pandas().data.melt(id_vars="YEAR", var_name="mon", value_name="temp")
    e["month"] = e["YEAR"].astype(int).astype(str) + "-" + (e["mon"].map(mons.index) + 1).map("{:02d}".format)
    e.sort_values("month")[["month", "temp"]].to_csv(root / "elnino.csv", index=False)
    c = sm.datasets.co2.load_pandas().data
    monthly = c["co2"].resample("MS").mean()
    pd.DataFrame({"month": monthly.index.strftime("%Y-%m"), "co2": monthly.round(3).to_numpy()}).to_csv(root / "co2m.csv", index=False)
    w = c.reset_index().rename(columns={"index": "week"})
    w["week"] = w["week"].dt.strftime("%Y%m%d")
    w.to_csv(root / "co2w.csv", index=False)
    m = sm.datasets.macrodata.load_pandas().data
    m["q"] = m["year"].astype(int).astype(str) + "Q" + m["quarter"].astype(int).astype(str)
    m[["q", "unemp", "infl"]].to_csv(root / "macro.csv", index=False)
    s = sm.datasets.sunspots.load_pandas().data.astype({"YEAR": int})
    s.to_csv(root / "sunspots.csv", index=False)
    n = sm.datasets.nile.load_pandas().data.astype({"year": int})
    n.to_csv(root / "nile.csv", index=False)
    return [("El Nino SST monthly", root / "elnino.csv", {"time": "month", "target": "temp", "horizon": 12}, 12),
            ("CO2 monthly", root / "co2m.csv", {"time": "month", "target": "co2", "horizon": 12}, 12),
            ("US unemployment quarterly", root / "macro.csv", {"time": "q", "target": "unemp", "horizon": 8}, 4),
            ("US inflation quarterly", root / "macro.csv", {"time": "q", "target": "infl", "horizon": 8}, 4),
            ("CO2 weekly, 59 missing", root / "co2w.csv", {"time": "week", "target": "co2", "horizon": 52, "fill": "interpolate"}, 52),
            ("sunspots yearly", root / "sunspots.csv", {"time": "YEAR", "target": "SUNACTIVITY", "horizon": 10}, 1),
            ("Nile flow yearly", root / "nile.csv", {"time": "year", "target": "volume", "horizon": 5}, 1)]


def peers(y: np.ndarray, H: int, m: int) -> dict:
    """The classical forecasters refitted on the history `y` (statsmodels, as a forecaster would run them)."""
    import warnings

    from statsmodels.tsa.ar_model import AutoReg, ar_select_order
    from statsmodels.tsa.forecasting.theta import ThetaModel
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    out = {"seasonal_naive": np.array([y[len(y) - m + (h % m)] for h in range(H)]) if m > 1 else np.repeat(y[-1], H)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seasonal = m > 1 and len(y) >= 2 * m + 2
        fits = [ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal=kind, seasonal_periods=m if kind else None,
                                     initialization_method="estimated").fit() for kind in ((["add", "mul"] if (y > 0).all() else ["add"]) if seasonal else [None])]
        out["ets_damped"] = np.asarray(min(fits, key=lambda f: f.aicc).forecast(H))
        out["theta"] = np.asarray(ThetaModel(y, period=max(m, 1), deseasonalize=m > 1).fit().forecast(H))
        lags = ar_select_order(y, int(min(max(2 * m, 12), len(y) // 4)), ic="aic", trend="c").ar_lags or []
        out["ar"] = np.asarray(AutoReg(y, lags=lags, trend="c").fit().forecast(H)) if lags else np.repeat(y.mean(), H)
    out["mean"] = np.mean([out[k] for k in ("seasonal_naive", "ets_damped", "theta", "ar")], axis=0)
    return out


def bench_late(root: Path, only: str | None = None) -> list[dict]:
    """Kiln's defaults trained on each series minus its last stretch, then scored at LATE_ORIGINS origins in that
    stretch, beside the peers refitted at each origin. MASE: MAE over the in-sample seasonal-naive MAE (the
    calendar's season) of the history Kiln trained on, the same scale for every method."""
    import kiln
    from kiln.run import Run
    from kiln.tasks.series.evaluate import predict_windows

    rows = []
    for name, path, keys, m_cal in package_series(root):
        if only and only.lower() not in name.lower():
            continue
        frame = pd.read_csv(path)
        y_full = frame[keys["target"]].to_numpy(np.float64)
        H = keys["horizon"]
        stride = max(1, H // 4)
        hold = H + (LATE_ORIGINS - 1) * stride
        prefix = root / f"{path.stem}-{keys['target']}-prefix.csv"
        frame.iloc[: len(frame) - hold].to_csv(prefix, index=False)
        t0 = time.time()
        run = kiln.train(data=str(prefix), run_dir=str(root / f"late-{path.stem}-{keys['target']}"), seed=0,
                         train={"verbose": 0, "tensorboard": False}, evaluate={"report": False},
                         **{f"series.{k}": v for k, v in keys.items()})
        wall = time.time() - t0
        run = Run(run.path)
        spec, model = run.spec, run.model
        y = pd.Series(y_full).ffill().to_numpy()  # the inputs at an origin: gaps carried forward (causal)
        T0 = len(frame) - hold
        mc = m_cal if m_cal > 1 else 1
        scale = np.nanmean(np.abs(y_full[mc:T0] - y_full[: T0 - mc]))
        errs: dict = {}
        for j in range(LATE_ORIGINS):
            o = T0 + j * stride
            actual = y_full[o:o + H]
            ok = np.isfinite(actual)
            preds = {"kiln": predict_windows(model, y[o - spec.lookback:o][None, :, None].astype(np.float32))[0]}
            preds.update(peers(y[:o], H, spec.season))
            for k, p in preds.items():
                errs.setdefault(k, []).append(np.mean(np.abs(np.asarray(p)[ok] - actual[ok])) / scale)
        row = {"data": name, "chosen": run.meta.get("model"), "season": spec.season, "n": len(frame), "horizon": H,
               "origins": LATE_ORIGINS, "wall_s": round(wall, 1), **{k: float(np.mean(v)) for k, v in errs.items()}}
        best = min(("ets_damped", "theta", "ar"), key=lambda k: row[k])
        row["kiln_vs_best"] = row["kiln"] / row[best]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


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
    ap.add_argument("--late", action="store_true", help="only the statsmodels series at late origins, beside refitted peers")
    ap.add_argument("--only", help="with --late: the series whose name contains this")
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--rows", default="1000000", help="rows of the large run(s), comma-separated (1,000 per series)")
    args = ap.parse_args()
    if args.child:
        return large_child(*args.child)
    root = Path(tempfile.mkdtemp(prefix="kiln-series-bench-"))
    if args.late:
        table = pd.DataFrame(bench_late(root, args.only))
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        means = table[["kiln", "seasonal_naive", "ets_damped", "theta", "ar", "mean"]].mean()
        print("mean over series: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
        return
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
