"""The anomaly task's parts of report.html: the threshold in words, metrics beside the baselines, the score
histogram with the threshold drawn, ROC and PR curves when val / test hold labelled anomalies."""

from __future__ import annotations

import base64
import html

from kiln.tasks.base import ReportSection

KEYS = ("roc_auc", "pr_auc", "tpr_at_fpr_1", "tpr_at_fpr_5", "precision", "recall", "f1", "fpr", "flagged", "n", "anomalies")


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))


def _img(path, alt: str) -> str:
    if not path.is_file():
        return ""
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def sections(run) -> list[ReportSection]:
    meta, metrics = run.meta, run.metrics
    spec, rule = meta["anomaly"], meta.get("threshold_rule") or {}
    what = {"series": lambda: f"windows of {spec['window']} steps of {', '.join(spec['columns'])}",
            "image": lambda: f"images {spec['size']}x{spec['size']}x{spec['channels']}",
            "table": lambda: f"rows of {len(spec['table']['features'])} columns"}[spec["kind"]]()
    head = (f'<h2 id="anomaly-summary">Anomaly detection</h2><p>{html.escape(str(meta["source"]["path"]))} · {what} · '
            f'model {html.escape(meta["model"])} · score: {spec["reduction"]} {spec["error"]} reconstruction error</p>'
            f'<p>Threshold {_fmt(meta.get("threshold"))} by rule <b>{html.escape(str(rule.get("rule")))}</b>: '
            f'{html.escape(str(rule.get("meaning", "")))}.</p>')
    rows = []
    for split in ("val", "test"):
        if split in metrics:
            rows.append([f"kiln ({split})"] + [_fmt(metrics[split].get(k)) for k in KEYS])
        for name, b in (metrics.get("baselines") or {}).get(split, {}).items():
            rows.append([f"{name} ({split})"] + [_fmt(b.get(k)) for k in KEYS])
    table = ("<table><tr><th></th>" + "".join(f"<th>{k}</th>" for k in KEYS) + "</tr>" +
             "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows) + "</table>")
    plots = run.path / "plots"
    body = (f'<h2 id="anomaly-scores">Scores and threshold</h2>{table}{_img(plots / "scores.png", "score histogram")}'
            f'{_img(plots / "roc_pr.png", "ROC and precision-recall curves")}{_img(plots / "series.png", "the test series, flagged windows shaded")}'
            f'{_img(plots / "worst.png", "highest-scoring test images and their error maps")}')
    parts = [ReportSection("anomaly-summary", "anomaly", head), ReportSection("anomaly-scores", "scores", body)]
    if metrics.get("top_rows"):
        rows = "".join(f"<tr><td>{r['row']}</td><td>{r['score']:.4g}</td><td>{'yes' if r['anomaly'] == 1 else ''}</td><td>"
                       + ", ".join(f"{html.escape(str(c))} {100 * v:.0f} %" for c, v in r["columns"]) + "</td></tr>" for r in metrics["top_rows"])
        parts.append(ReportSection("anomaly-rows", "top rows", '<h2 id="anomaly-rows">Highest-scoring test rows and the columns behind them</h2>'
                                   "<table><tr><th>row</th><th>score</th><th>labelled anomalous</th><th>largest shares of its error</th></tr>"
                                   f"{rows}</table>"))
    return parts


__all__ = ["sections"]
