"""`kiln audit` on a text source: problems found and reported, never fixed; audit.json + audit.html.

Kinds (stable names): empty_text, whitespace_text, undecodable_bytes, exact_duplicate, near_duplicate
(the same text once lower-cased, punctuation and spacing removed, as the tokenizer sees it),
conflicting_labels (one normalised text under two labels), split_leak (one normalised text in two
splits), truncated (texts longer than `sequence_length` tokens, or cut at `max_chars`), class_imbalance,
tiny_class. The token-length distribution is in "lengths".
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.io import write_json, write_text

KINDS = {
    "empty_text": ("error", "texts with no characters"),
    "whitespace_text": ("error", "texts of whitespace only"),
    "undecodable_bytes": ("warning", "bytes that are not UTF-8, read as U+FFFD"),
    "exact_duplicate": ("warning", "the same text more than once"),
    "near_duplicate": ("info", "texts equal once case, punctuation and spacing are ignored"),
    "conflicting_labels": ("error", "the same (normalised) text under two labels"),
    "split_leak": ("error", "the same (normalised) text in two splits"),
    "truncated": ("info", "texts longer than sequence_length tokens (or cut at max_chars)"),
    "class_imbalance": ("warning", "the largest class is 10x the smallest or more"),
    "tiny_class": ("warning", "a class with fewer than 10 texts"),
}


def _problem(out: list, kind: str, detail: str, examples=None, count: int = 1) -> None:
    out.append({"kind": kind, "severity": KINDS[kind][0], "count": int(count), "detail": detail,
                "examples": [str(e) for e in (list(examples) if examples is not None else [])][:5]})  # an array has no truth value


def normalise(text: str) -> str:
    from kiln.tasks.text.tokenize import words

    return " ".join(words(text))


def audit_rows(rows: pd.DataFrame, sequence_length="auto", max_chars: int = 100_000) -> dict:
    from kiln.tasks.text.spec import choose_length
    from kiln.tasks.text.tokenize import words

    problems: list[dict] = []
    texts = rows["text"]
    empty = texts.str.len().to_numpy() == 0
    blank = (texts.str.strip().str.len().to_numpy() == 0) & ~empty
    where = rows["where"].to_numpy()
    if empty.any():
        _problem(problems, "empty_text", f"{int(empty.sum())} empty texts", where[empty], empty.sum())
    if blank.any():
        _problem(problems, "whitespace_text", f"{int(blank.sum())} texts of whitespace only", where[blank], blank.sum())
    bad = rows["bad_bytes"].to_numpy() > 0
    if bad.any():
        _problem(problems, "undecodable_bytes", f"{int(bad.sum())} texts hold {int(rows['bad_bytes'].sum())} undecodable bytes "
                 "(read with replacement)", where[bad], bad.sum())
    usable = ~(empty | blank)
    frame = rows[usable].assign(norm=[normalise(t) for t in texts[usable]])
    dup = frame[frame.duplicated("text", keep=False)]
    if len(dup):
        groups = dup.groupby("text")["where"].apply(list)
        _problem(problems, "exact_duplicate", f"{len(groups)} texts appear {len(dup)} times in all",
                 [" = ".join(g[:3]) for g in groups], len(dup) - len(groups))
    near = frame[frame.duplicated("norm", keep=False) & ~frame.duplicated("text", keep=False)]
    if len(near):
        groups = frame[frame["norm"].isin(near["norm"])].groupby("norm")["where"].apply(list)
        _problem(problems, "near_duplicate", f"{len(groups)} groups of texts differ only in case, punctuation or spacing",
                 [" ~ ".join(g[:3]) for g in groups], len(groups))
    labels = frame.groupby("norm")["label"].nunique()
    clash = labels[labels > 1]
    if len(clash):
        ex = [f"{' / '.join(sorted(frame[frame['norm'] == k]['label'].unique()))}: {k[:60]!r}" for k in clash.index[:5]]
        _problem(problems, "conflicting_labels", f"{len(clash)} texts carry two or more labels", ex, len(clash))
    if frame["split"].notna().any():
        splits = frame.groupby("norm")["split"].nunique()
        leak = splits[splits > 1]
        if len(leak):
            _problem(problems, "split_leak", f"{len(leak)} texts are in two splits (val/test scores are inflated)",
                     [k[:60] for k in leak.index[:5]], len(leak))
    lengths = np.array([len(words(t)) for t in frame["text"]])
    seq = choose_length(lengths, "cnn1d", sequence_length)
    long = lengths > seq
    cut = rows["truncated"].to_numpy()
    if long.any() or cut.any():
        _problem(problems, "truncated", f"{int(long.sum())} texts ({long.mean():.1%}) are longer than {seq} tokens"
                 + (f"; {int(cut.sum())} were cut at max_chars={max_chars}" if cut.any() else ""),
                 frame["where"].to_numpy()[long], int(long.sum() + cut.sum()))
    counts = frame["label"].value_counts()
    if len(counts) > 1 and counts.max() >= 10 * counts.min():
        _problem(problems, "class_imbalance", f"{counts.index[0]!r} has {counts.iloc[0]} texts, {counts.index[-1]!r} {counts.iloc[-1]}",
                 [], 1)
    for c, n in counts[counts < 10].items():
        _problem(problems, "tiny_class", f"class {c!r} has {n} texts", [], 1)
    pct = {f"p{q}": float(np.percentile(lengths, q)) for q in (5, 25, 50, 75, 95, 99)} if len(lengths) else {}
    hist, edges = np.histogram(lengths, bins=20) if len(lengths) else (np.array([]), np.array([]))
    sev = {s: sum(1 for p in problems if p["severity"] == s) for s in ("error", "warning", "info")}
    return {"rows": int(len(rows)), "classes": {str(k): int(v) for k, v in counts.items()}, "problems": problems,
            "counts": {p["kind"]: p["count"] for p in problems}, "severities": sev,
            "lengths": {"unit": "tokens (words)", "sequence_length": int(seq), **pct, "max": int(lengths.max()) if len(lengths) else 0,
                        "histogram": {"edges": edges.tolist(), "counts": hist.tolist()}}}


def _page(report: dict) -> str:
    from kiln.tasks.common.audit_page import CSS, histogram_png

    rows = "".join(f"<tr><td class='{p['severity']}'>{p['severity']}</td><td>{html.escape(p['kind'])}</td><td>{p['count']}</td>"
                   f"<td>{html.escape(p['detail'])}</td><td>{html.escape('; '.join(p['examples']))}</td></tr>" for p in report["problems"])
    table = (f"<table><tr><th>severity</th><th>kind</th><th>count</th><th>detail</th><th>examples</th></tr>{rows}</table>"
             if rows else "<p>No problems found.</p>")
    lengths = report["lengths"]
    img = histogram_png("tokens per text", {"type": "bins", **lengths["histogram"]})
    classes = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in report["classes"].items())
    facts = ", ".join(f"{k} {v:.0f}" for k, v in lengths.items() if k.startswith("p"))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Kiln text audit</title><style>{CSS}</style></head><body>"
            f"<h1>Text audit</h1><p>{html.escape(str(report.get('source', '')))} · {report['rows']} texts · {len(report['classes'])} classes</p>"
            f"<h2>Problems</h2>{table}<h2>Length in tokens</h2><p>{facts}; sequence_length {lengths['sequence_length']}</p>"
            + (f"<img src='{img}'>" if img else "") + f"<h2>Classes</h2><table><tr><th>class</th><th>texts</th></tr>{classes}</table>"
            "</body></html>")


def audit(data: str, out: str | None = None, text: str | None = None, target: str | None = None, label: str | None = None,
          sequence_length="auto", max_chars: int = 100_000, **_) -> dict:
    """Audit a text folder or file; write out/audit.json and audit.html; return the report (with "out")."""
    from kiln.tasks.text.source import read_texts

    rows = read_texts(data, text, label or target, "split", int(max_chars), "audit")
    report = audit_rows(rows, sequence_length, int(max_chars))
    report["source"] = str(data)
    dest = Path(out or "runs/audit")
    write_json(dest / "audit.json", report)
    write_text(dest / "audit.html", _page(report))
    report["out"] = str(dest)
    return report


def summary_lines(report: dict) -> list[str]:
    sev = report["severities"]
    lines = [f"kiln: audited {report['rows']} texts in {len(report['classes'])} classes: {sev['error']} error(s), "
             f"{sev['warning']} warning(s), {sev['info']} note(s); median {report['lengths'].get('p50', 0):.0f} tokens"]
    lines += [f"  {p['kind']:<20} {p['count']:>5}  {p['detail']}" for p in report["problems"]]
    return lines


__all__ = ["KINDS", "audit", "audit_rows", "normalise", "summary_lines"]
