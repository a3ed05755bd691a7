"""`audit.html` for a table: one self-contained page (charts as base64 PNG), no network."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kiln.io import write_text  # noqa: E402

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
.error{color:#b00020}.warning{color:#a15c00}.info{color:#2a5db0}
.cols{display:flex;flex-wrap:wrap;gap:14px}.col{width:280px;font-size:12px}.col img{width:270px}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def histogram_png(name: str, hist: dict) -> str | None:
    if not hist.get("counts"):
        return None
    fig, ax = plt.subplots(figsize=(3.8, 2.2))
    if hist["type"] == "bins":
        edges = hist["edges"]
        ax.bar(edges[:-1], hist["counts"], width=[b - a for a, b in zip(edges[:-1], edges[1:])] or 1, align="edge", color="#4c72b0")
    else:
        labels = [v[:12] for v in hist["values"]]
        ax.bar(range(len(labels)), hist["counts"], color="#55a868")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_title(name[:40], fontsize=9)
    ax.tick_params(labelsize=7)
    return _png(fig)


def column_cards(columns: dict) -> str:
    cards = []
    for name, c in columns.items():
        img = histogram_png(name, c["histogram"])
        facts = f"{html.escape(c['type'])} · {c['unique']} distinct · {c['missing']} missing ({c['missing_share']:.1%})"
        if "range" in c and c["range"]:
            facts += f" · {c['range']['min']} to {c['range']['max']}"
        cards.append(f"<div class='col'><b>{html.escape(name)}</b><br>{facts}" + (f"<br><img src='{img}'>" if img else "") + "</div>")
    return "<div class='cols'>" + "".join(cards) + "</div>"


def problems_table(problems: list[dict]) -> str:
    rows = "".join(f"<tr><td class='{p['severity']}'>{p['severity']}</td><td>{html.escape(p['kind'])}</td>"
                   f"<td>{html.escape(str(p['column'] or ''))}</td><td>{html.escape(p['detail'])}</td></tr>" for p in problems)
    return f"<table><tr><th>severity</th><th>kind</th><th>column</th><th>detail</th></tr>{rows}</table>" if rows else "<p>No problems found.</p>"


def write_page(report: dict, dest: str | Path) -> Path:
    src = report.get("source") or {}
    head = (f"<p>{html.escape(str(src.get('path', '')))} · {report['rows']} rows × {len(report['columns'])} columns"
            f"{' · target ' + html.escape(report['target']) if report.get('target') else ''}"
            f"{' · ' + html.escape(str(src.get('encoding'))) if src.get('encoding') else ''}</p>")
    body = (f"<h1>Table audit</h1>{head}<h2>Problems</h2>{problems_table(report['problems'])}"
            f"<h2>Columns</h2>{column_cards(report['columns'])}")
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>Kiln table audit</title><style>{CSS}</style></head><body>{body}</body></html>"
    return write_text(dest, page)


__all__ = ["column_cards", "histogram_png", "problems_table", "write_page"]
