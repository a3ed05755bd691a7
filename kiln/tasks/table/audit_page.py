"""`audit.html` for a table: one self-contained page (charts as base64 PNG), no network."""

from __future__ import annotations

import html
from pathlib import Path

from kiln.io import write_text
from kiln.tasks.common.audit_page import CSS, histogram_png


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


__all__ = ["column_cards", "problems_table", "write_page"]
