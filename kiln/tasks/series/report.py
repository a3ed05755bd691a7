"""metrics.json, `kiln evaluate`, `kiln predict`, `kiln audit` and the report sections of a series run.

metrics.json: {"val": {...}, "test": {...}, "baselines": {"val": {name: {...}}, "test": {...}}}; each split holds
the model's MASE (the headline), MAE, RMSE, sMAPE, MAPE (or why it is left out), MAE by step, coverage
with quantiles, the skill against seasonal naive and the baselines on the same windows.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import numpy as np

from kiln.errors import DataError, received
from kiln.io import atomic_path, write_json

log = logging.getLogger("kiln.series")


def _data_path(run) -> str:
    return run.config.data.path


def evaluate_fresh(run, frame, spec, s) -> dict:
    """Backtests of val and test, the baselines beside them, and the plots."""
    from kiln.tasks.series.evaluate import backtest
    from kiln.tasks.series.plots import write_plots

    origins = None if s.backtest == "auto" else int(s.backtest)
    metrics, kept = {}, {}
    for split in ("val", "test"):
        keep = {} if split == "test" else None  # only the test backtest is drawn: val's arrays are not held
        m = backtest(run.model, frame, spec, split, holt=s.baselines, origins=origins or 500, keep=keep)
        if m.get("windows"):
            metrics[split] = m
            kept[split] = keep
    metrics["baselines"] = {k: v["baselines"] for k, v in metrics.items() if isinstance(v, dict) and "baselines" in v}
    if "test" in kept:
        write_plots(run.path / "plots", frame, spec, kept["test"], metrics["test"])
    return metrics


def evaluate_file(run, data: str | None, split: str, out: str | None) -> dict:
    """`kiln evaluate RUN [data=FILE] [split=test]`: the same backtest on the run's file or another one (its last
    stretches split with the run's lengths)."""
    from kiln.tasks.series.evaluate import backtest
    from kiln.tasks.series.prepare import frame_for

    spec = run.spec
    frame = frame_for(spec, data or _data_path(run), "evaluate")
    s = run.config.series
    origins = 500 if s.backtest == "auto" else int(s.backtest)
    result = backtest(run.model, frame, spec, split, holt=s.baselines, origins=origins)
    if not result.get("windows"):
        raise DataError(received("evaluate", "split", split, "no window of that stretch is free of missing values", "Use split=test"))
    if out:
        write_json(out, result)
    return result


def split_windows(run, split: str, limit: int):
    """(inputs (N, L, C), targets (N, H)) of one split of the run's own data (at most `limit`, evenly spaced)."""
    from kiln.tasks.series.prepare import frame_for
    from kiln.tasks.series.windows import Windows

    spec = run.spec
    w = Windows(frame_for(spec, _data_path(run), "export"), spec)
    starts = w.starts((split,))
    if len(starts) > limit:
        starts = starts[np.unique(np.linspace(0, len(starts) - 1, limit).round().astype(int))]
    return w.arrays(starts)


def read_history(run, path, component: str = "predict"):
    """A history file read as training read it, on the run's grid (its frequency checked)."""
    from kiln.tasks.series.audit import regularise
    from kiln.tasks.series.prepare import check_frequency
    from kiln.tasks.series.source import read_series

    spec = run.spec
    sf = read_series(path, spec.time, spec.target, spec.series_column, spec.covariates, spec.time_format, component)
    if not len(sf.frame):
        raise DataError(received(component, "history", path, "no row has a time that parses", f"The run reads {spec.time} as {spec.time_format}"))
    check_frequency(sf.frame, spec, component, path)
    return regularise(sf, spec.freq, spec.fill, component)[0]


def predict_files(run, inputs, out: str | None, runtime: str = "auto") -> list[dict]:
    """One dict per series of each history file: its forecast rows; `out=` writes them all as one CSV.
    `runtime`: auto, keras or onnx (kiln/export/runtime.py: the run's verified ONNX export, windows cut here in NumPy)."""
    import pandas as pd

    from kiln.export.runtime import announce, export_model
    from kiln.tasks.series.evaluate import forecast

    model = export_model(run, runtime)  # a wrong runtime= is named before any file is read

    if not inputs:
        raise DataError(received("predict", "inputs", "<none>", "pass a history file", "Example: kiln predict runs/train history.csv out=forecast.csv"))
    if out and any(Path(out).resolve() == Path(str(p)).resolve() for p in inputs if not isinstance(p, pd.DataFrame)):
        raise DataError(received("predict", "out", out, "it is one of the history files, which Kiln never rewrites", "Pass another out= path"))
    spec, frames, result = run.spec, [], []
    for item in inputs:
        frame = forecast(run.model if model is None else model, read_history(run, item), spec)
        frames.append(frame.assign(source=str(item)))
        keys = frame["series"].unique() if "series" in frame else [None]
        for sid in keys:
            part = frame if sid is None else frame[frame["series"] == sid]
            result.append({"source": str(item), **({"series": str(sid)} if sid is not None else {}),
                           "forecast": json.loads(part.drop(columns=["series"], errors="ignore").to_json(orient="records"))})
    announce(run, model, len(result), "forecast(s)")
    if out:
        with atomic_path(out) as tmp:
            pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
        print(f"kiln: wrote {sum(len(f) for f in frames)} forecast rows to {out}", flush=True)
    return result


def audit_file(path, out, time, target, series=None, time_format=None) -> dict:
    """`kiln audit FILE time=COL target=COL`: the timestamp audit, written as out/audit.json and audit.html."""
    from kiln.io import write_text
    from kiln.tasks.series.audit import audit_frame
    from kiln.tasks.series.source import read_series

    sf = read_series(path, time, target, series, (), time_format, "audit")
    if not len(sf.frame):
        raise DataError(received("audit", "time", time, "no cell of the column parses as a timestamp", "Pass time_format="))
    report = audit_frame(sf, *season_for_audit(sf))
    dest = Path(out or "runs/audit")
    write_json(dest / "audit.json", report)
    write_text(dest / "audit.html", audit_page(report, sf, target))
    report["out"] = str(dest)
    return report


def audit_page(report: dict, sf, target: str) -> str:
    """audit.html: the report page's style, the series drawn over time (gaps and missing values show as breaks in
    the line, up to 6 series), then the checks."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kiln.evaluate.report import CSS

    frame = sf.frame
    names = list(dict.fromkeys(frame["series"]))[:6]
    fig, ax = plt.subplots(figsize=(11, 3.2))
    for name in names:
        one = frame[frame["series"] == name].sort_values("time")
        ax.plot(one["time"], one["y"], lw=0.9, label=str(name) if len(names) > 1 else None)
    ax.set_ylabel(target)
    ax.grid(alpha=0.3)
    if len(names) > 1:
        ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    plot = f"<img alt='{html.escape(target)} over time' src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>"
    title = f"Kiln series audit: {html.escape(Path(str(sf.path)).name)}"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style></head><body>"
            f"<h1>{title}</h1><p class='muted'>{html.escape(str(sf.path))} · target {html.escape(target)}"
            f"{' · first 6 series drawn' if frame['series'].nunique() > 6 else ''}</p>{plot}{audit_html(report)}</body></html>\n")
def season_for_audit(sf) -> tuple[str, int | None]:
    """(frequency, season from the whole file's data as training would find it; None when the file cannot go on
    its grid, e.g. duplicate timestamps, which the audit then lists)."""
    from kiln.tasks.series.audit import infer_freq, regularise
    from kiln.tasks.series.seasonality import detect_season

    freq = infer_freq(sf.frame.loc[sf.frame["series"] == sf.frame["series"].iloc[0], "time"])
    try:
        frame = regularise(sf, freq, "none", "audit")[0]
    except DataError:
        return freq, None
    return freq, detect_season(frame, freq, len(frame))[0]


def _table(head, rows) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _fmt(v) -> str:
    if v is None:
        return "–"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def audit_html(report: dict) -> str:
    t = report["total"]
    rows = [["frequency", report["frequency"]], ["season", report["season"]], ["series", report["series"]], ["rows", t["rows"]],
            ["duplicate timestamps", t["duplicates"]], ["missing timestamps (gaps)", t["missing_timestamps"]], ["gaps", t["gaps"]],
            ["longest gap", report["longest_gap"]], ["missing values", t["missing_values"]], ["longest missing run", report["longest_missing"]],
            ["constant stretches", t["constant_stretches"]], ["outliers", t["outliers"]], ["off-grid timestamps", t["off_grid"]]]
    probs = _table(["severity", "kind", "detail"], [[p["severity"], p["kind"], p["detail"]] for p in report["problems"]]) \
        if report["problems"] else "<p>No problems found.</p>"
    changes = _table(["series", "from", "to", "step", "steps"], [[c["series"], c["from"], c["to"], c["step"], c["steps"]]
                                                                for c in report.get("step_changes", [])]) if report.get("step_changes") else ""
    fill = report.get("fill")
    filled = f"<p>fill={fill['fill']}: {fill['filled']:,} values filled, {fill['missing_after_fill']:,} still missing.</p>" if fill else ""
    return f"<h2 id=\"series-audit\">Timestamp audit</h2>{_table(['check', 'value'], rows)}{filled}{probs}{changes}"


NAMES = {"kiln": "Kiln's model", "seasonal_naive": "seasonal naive", "holt_winters": "damped Holt-Winters", "theta": "Theta",
         "ar": "AR (lags by AIC)", "mean": "the mean of seasonal naive, Holt-Winters, Theta and AR", "naive": "naive", "drift": "drift"}


def verdict(result: dict) -> str:
    """One sentence: which forecaster has the lowest MASE on these windows, and Kiln's model beside it."""
    from kiln.tasks.series.evaluate import winner

    best = result.get("winner") or winner(result)
    if not best:
        return ""
    if best["name"] == "kiln":
        others = [v["mase"] for v in result.get("baselines", {}).values() if v.get("mase") is not None]
        return f"Kiln's model wins: MASE {best['mase']:.3f}" + (f", the best baseline {min(others):.3f}." if others else ".")
    return (f"{NAMES.get(best['name'], best['name'])} wins: MASE {best['mase']:.3f} against Kiln's model's {result['mase']:.3f} "
            f"({100 * (result['mase'] / best['mase'] - 1):.1f} % higher).")


def _img(path: Path, alt: str) -> str:
    import base64

    if not path.is_file():
        return ""
    return f"<img class='plot' alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}'>"


def sections(run) -> list:
    """Metrics beside the baselines, forecasts with intervals, backtest windows, errors by step, residuals, the audit."""
    from kiln.tasks.base import ReportSection

    m, spec, plots = run.metrics, run.spec, run.path / "plots"
    out = []
    keys = ["mase", "mae", "rmse", "smape", "mape", "skill_vs_seasonal_naive", "windows"]
    for split in ("test", "val"):
        if split not in m:
            continue
        rows = [[f"kiln {run.meta.get('model')}"] + [m[split].get(k) for k in keys]]
        rows += [[name] + [b.get(k) for k in keys] for name, b in m[split].get("baselines", {}).items()]
        note = m[split].get("mape_note")
        cov = (f"<p>Interval {m[split]['interval']}: empirical coverage {m[split]['coverage']:.3f} "
               f"(nominal {m[split]['nominal_coverage']:.2f}).</p>") if "coverage" in m[split] else ""
        out.append(ReportSection(f"series-{split}", f"{split} backtest",
                                 f"<h2 id=\"series-{split}\">{split.title()} backtest: Kiln beside the baselines (same windows)</h2>"
                                 f"<p>MASE is scaled by the in-sample seasonal-naive MAE (season {spec.season}); skill = 1 - MASE / "
                                 f"MASE of seasonal naive.</p>{_table(['model'] + keys, rows)}<p>{html.escape(verdict(m[split]))}</p>"
                                 f"{'<p>MAPE ' + html.escape(note) + '.</p>' if note else ''}{cov}"))
    chosen = (run.meta.get("selection") or {}).get("why")
    if chosen:
        out.insert(0, ReportSection("series-choice", "model choice", f"<h2 id=\"series-choice\">Model choice</h2><p>model=auto: "
                                    f"{html.escape(chosen)}.</p>"))
    figs = [("series-forecast", "forecasts", "forecast.png", "The last test windows: history, forecasts and intervals"),
            ("series-backtest", "backtest", "backtest.png", "Backtest windows over the test stretch"),
            ("series-steps", "errors by step", "errors_by_step.png", "MAE by horizon step, Kiln and the baselines"),
            ("series-residuals", "residuals", "residuals.png", "Residuals of the test backtest")]
    for sid, title, name, heading in figs:
        img = _img(plots / name, heading)
        if img:
            out.append(ReportSection(sid, title, f"<h2 id=\"{sid}\">{heading}</h2>{img}"))
    audit = run.path / "audit.json"
    if audit.is_file():
        out.append(ReportSection("series-audit", "audit", audit_html(json.loads(audit.read_text()))))
    return out


__all__ = ["verdict", "season_for_audit", "audit_file", "audit_html", "evaluate_file", "evaluate_fresh", "predict_files", "sections", "split_windows"]
