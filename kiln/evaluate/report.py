"""The run report: one self-contained HTML page (plots embedded as base64 PNG, no links out).

    from kiln.evaluate.report import write_report
    write_report("runs/train")            # RUN/report.html

The page is the spine's: title, navigation, the training curves (history.csv, phases shaded) and the
exports found under RUN/exports/; every other section comes from the run's task
(`Task.report_sections`, kiln/tasks/<task>/report.py). The task's first section (its summary) is shown
before the training curves, the rest after them.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kiln.io import read_json  # noqa: E402

log = logging.getLogger("kiln.report")

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;padding:18px;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.8em}
table{border-collapse:collapse;margin:8px 0;font-size:.9em} td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} .muted{color:#777} img.plot{max-width:100%;height:auto}
.gallery{display:flex;flex-wrap:wrap;gap:10px} .card{width:150px;font-size:.78em;text-align:center}
.card img{width:144px;height:144px;object-fit:contain;image-rendering:pixelated;border:1px solid #ccc;background:#eee}
.pair img{width:144px} .pair{width:300px} .kv td:first-child{text-align:left;color:#555} nav a{margin-right:10px}
.bad{color:#b00} .good{color:#070}
"""



# ---------------------------------------------------------------- helpers the task sections use too

def _esc(value) -> str:
    return html.escape(str(value))


def _fig_b64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img_tag(b64: str, alt: str, cls: str = "plot", mime: str = "png") -> str:
    return f'<img class="{cls}" alt="{_esc(alt)}" src="data:image/{mime};base64,{b64}">'


def _table(header: list[str], rows: list[list], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{_esc(h)}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return _esc(v)


# ---------------------------------------------------------------- the spine's sections

def history_figure(history: pd.DataFrame):
    """Loss, accuracy and learning rate per epoch; phases (a `phase` column) shaded and labelled."""
    n = len(history)
    if "phase" in history.columns:
        x = np.arange(1, n + 1)  # epochs counted across phases
    elif "epoch" in history.columns:
        x = history["epoch"].to_numpy() + 1
    else:
        x = np.arange(1, n + 1)
    panels = [m for m in ("loss", "accuracy") if m in history.columns]
    has_lr = "lr" in history.columns or "learning_rate" in history.columns
    count = len(panels) + int(has_lr)
    fig, axes = plt.subplots(1, max(count, 1), figsize=(5 * max(count, 1), 3.6))
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, panels):
        ax.plot(x, history[metric], marker=".", label=f"train {metric}")
        if f"val_{metric}" in history.columns:
            ax.plot(x, history[f"val_{metric}"], marker=".", label=f"val {metric}")
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if has_lr:
        ax = axes[len(panels)]
        ax.plot(x, history["lr" if "lr" in history.columns else "learning_rate"], color="tab:green", marker=".")
        ax.set_title("learning rate (end of epoch)")
        ax.set_xlabel("epoch")
        if (history.get("lr", history.get("learning_rate")) > 0).all():
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if "phase" in history.columns and n:
        phases = history["phase"].astype(str).to_numpy()
        starts = [0] + [i for i in range(1, n) if phases[i] != phases[i - 1]]
        ends = starts[1:] + [n]
        colours = ["#e8f0fe", "#fdf1e3", "#e9f7ec", "#f6e8f7"]
        for j, (a, b) in enumerate(zip(starts, ends)):
            for ax in axes:
                ax.axvspan(x[a] - 0.5, x[b - 1] + 0.5, color=colours[j % len(colours)], zorder=0)
                if j:
                    ax.axvline(x[a] - 0.5, color="grey", ls="--", lw=1)
            label = f"phase {phases[a]}" if phases[a].isdigit() else phases[a]
            axes[0].text(x[a] - 0.4, axes[0].get_ylim()[1], label, va="top", fontsize=8, color="#444")
    fig.tight_layout()
    return fig


def _find_json(run_dir: Path, name: str) -> list[tuple[Path, dict]]:
    found = []
    for path in [run_dir / name, *sorted(run_dir.glob(f"exports/{name}")), *sorted(run_dir.glob(f"exports/*/{name}")),
                 *sorted(run_dir.glob(f"exports/*/*/{name}"))]:
        if path.is_file():  # a damaged one stops the report, naming the file (kiln/io.py)
            found.append((path, read_json(path, f"a Kiln {name}", fix="Restore it from a copy, or move it away and write the report again")))
    return found


def _export_section(run_dir: Path) -> str:
    found = _find_json(run_dir, "export.json")
    if not found:
        return ""
    rows = []
    for path, e in found:
        size = e.get("size_bytes")
        rows.append([_esc(path.parent.relative_to(run_dir) if path.parent != run_dir else "."), _esc(e.get("format")),
                     _esc(e.get("quantize")), _fmt(e.get("agreement")), _esc(e.get("agreement_rule", "same top class")),
                     _esc(e.get("metric", "accuracy")), _fmt(e.get("score", e.get("accuracy"))),
                     _fmt(e.get("keras_score", e.get("keras_accuracy"))),
                     f"{size / 1e6:.2f} MB" if isinstance(size, (int, float)) else "–"])
    return ('<h2 id="exports">Exports</h2>'
            + _table(["folder", "format", "quantize", "agreement with Keras", "agreement rule", "metric", "export", "Keras", "size"],
                     rows, left=3))


def _curves_section(run) -> str:
    hist_path = run.path / "history.csv"
    if not hist_path.is_file() or not len(run.history):
        return ""
    phases = run.history["phase"].nunique() if "phase" in run.history.columns else 0
    note = "Phases shaded." if phases > 1 else ""
    return (f'<h2 id="curves">Training curves</h2><p class="muted">{note}</p>'
            + _img_tag(_fig_b64(history_figure(run.history)), "training curves"))


# ---------------------------------------------------------------- the page

def build_report(run, split: str | None = None, **options) -> str:
    """The report as one HTML string; `options` go to the task's sections (image runs: gallery,
    gradcam_samples, audit)."""
    from kiln.tasks.base import ReportSection

    from dataclasses import replace

    from kiln.evaluate.verdict import verdict_html

    parts = [p for p in run.task.report_sections(run, split, **options) if p.html]
    verdict = verdict_html(run.metrics.get("verdict"))
    if verdict:  # the first section says plainly whether the model loses to a baseline
        parts = [replace(parts[0], html=parts[0].html + verdict)] + parts[1:] if parts else [ReportSection("verdict", "verdict", verdict)]
    curves = _curves_section(run)
    if curves:
        parts.insert(min(1, len(parts)), ReportSection("curves", "training", curves))
    from kiln.doctor.findings import report_section

    if (run.path / "history.csv").is_file():  # the doctor's findings head the page
        parts.insert(0, ReportSection("doctor", "doctor", report_section(run.path)))
    exports = _export_section(run.path)
    if exports:
        parts.append(ReportSection("exports", "exports", exports, in_nav=False))
    nav = " ".join(f'<a href="#{p.id}">{p.title}</a>' for p in parts if p.in_nav)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Kiln report: {_esc(run.name)}</title>"
            f"<style>{CSS}</style></head><body><h1>Kiln report: {_esc(run.name)}</h1>"
            f"<p class='muted'>{_esc(run.path.resolve())} · written {stamp}</p><nav>{nav}</nav>{''.join(p.html for p in parts)}"
            "</body></html>\n")


def write_report(run, out: str | Path | None = None, split: str | None = None, **options) -> Path:
    """Write RUN/report.html (or `out`) and return its path; `options` go to the task's sections (image:
    gallery=24, gradcam_samples=8, audit=FILE for an audit.json from elsewhere)."""
    from kiln.io import write_text
    from kiln.run import Run

    if not isinstance(run, Run):
        from kiln.run import load_run

        run = load_run(run)
    dest = Path(out) if out else run.path / "report.html"
    write_text(dest, build_report(run, split=split, **options))
    log.info("report: wrote %s", dest)
    return dest


__all__ = ["build_report", "history_figure", "write_report"]
