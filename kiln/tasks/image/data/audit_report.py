"""`audit.html`: one self-contained page (charts and thumbnails embedded as base64, no network).

Class histogram, image size scatter, aspect-ratio histogram, a count per problem kind, example
thumbnails of each kind (as Kiln would feed them: EXIF applied, first frame, RGB), and the problem
table (the full list is in audit.json).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kiln.io import write_text  # noqa: E402

TABLE_ROWS = 2000
SCATTER_POINTS = 20000
CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
.error{color:#b00020}.warning{color:#a15c00}.info{color:#2a5db0}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}.thumb{width:150px;font-size:11px;word-break:break-all}
.thumb img,.thumb .none{width:128px;height:128px;object-fit:contain;background:#eee;display:flex;align-items:center;justify-content:center;border:1px solid #ccc}
.charts img{max-width:380px;margin-right:12px}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _charts(report: dict, rows: list[dict]) -> list[str]:
    charts = []
    classes = report["classes"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    names = list(classes)
    ax.bar(range(len(names)), [classes[c] for c in names], color="#4c72b0", label="files")
    ax.bar(range(len(names)), [report["usable_classes"][c] for c in names], color="#55a868", width=0.5, label="readable")
    ax.set_xticks(range(len(names)), names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center", fontsize=8)
    ax.set_title("images per class")
    ax.legend(fontsize=8)
    charts.append(_png(fig))

    ok = [r for r in rows if r.get("ok")]
    if ok:
        rng = np.random.default_rng(0)
        pick = ok if len(ok) <= SCATTER_POINTS else [ok[i] for i in rng.choice(len(ok), SCATTER_POINTS, replace=False)]
        w = np.array([r["width"] for r in pick], float)
        h = np.array([r["height"] for r in pick], float)
        fig, ax = plt.subplots(figsize=(4, 3.2))
        ax.scatter(w, h, s=6, alpha=0.4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width (px)")
        ax.set_ylabel("height (px)")
        ax.set_title(f"image sizes ({len(pick):,} shown)")
        charts.append(_png(fig))
        fig, ax = plt.subplots(figsize=(4, 3.2))
        ax.hist(np.log2(w / h), bins=40, color="#8172b2")
        ax.set_xlabel("log2(width / height)")
        ax.set_title("aspect ratio")
        charts.append(_png(fig))
    return charts


def thumbnail(path: str, side: int = 128) -> str | None:
    """A JPEG data URI of the image as Kiln would see it, or None when it cannot be read."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            if img.width * img.height > 89_478_485:
                return None
            img.seek(0)
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((side, side))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=80)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    except Exception:
        return None


def write_html(report: dict, rows: list[dict], dest: Path, per_kind: int = 12) -> Path:
    from kiln.tasks.image.data.audit import KINDS

    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Kiln audit</title><style>{CSS}</style></head><body>",
             f"<h1>Kiln audit of {esc(report['source'])}</h1>",
             f"<p>{report['files']:,} files, {len(report['classes'])} classes, {report['readable']:,} readable; "
             f"{len(report['problems']):,} problem(s) in {report['problem_files']:,} file(s) "
             f"({report['severities']['error']} error, {report['severities']['warning']} warning, {report['severities']['info']} info); "
             f"{len(report['duplicates'])} duplicate group(s). Scanned in {report['seconds']:.1f} s.</p>"]
    imb = report["imbalance"]
    if imb["ratio"] is not None:
        weights = ", ".join(f"{esc(c)}: {w}" for c, w in imb["class_weights"].items())
        parts.append(f"<p>Class imbalance ratio {imb['ratio']} (largest {esc(imb['largest'])}, smallest {esc(imb['smallest'])}). "
                     f"Suggested class weights (<code>class_weight=balanced</code>): {weights}.</p>")
    parts.append("<h2>Data</h2><div class='charts'>" + "".join(f"<img src='{c}'>" for c in _charts(report, rows)) + "</div>")

    parts.append("<h2>Problems by kind</h2><table><tr><th>kind</th><th>severity</th><th>files</th><th>meaning</th></tr>")
    for kind, (severity, meaning) in KINDS.items():
        n = report["kinds"].get(kind, 0)
        parts.append(f"<tr><td class='{severity}'>{kind}</td><td>{severity}</td><td>{n}</td><td>{esc(meaning)}</td></tr>")
    parts.append("</table>")

    for kind in report["kinds"]:
        examples = [p for p in report["problems"] if p["kind"] == kind][:per_kind]
        if not examples:
            continue
        parts.append(f"<h2 class='{KINDS[kind][0]}'>{kind}</h2><div class='thumbs'>")
        for p in examples:
            uri = thumbnail(p["path"]) if KINDS[kind][0] != "error" or kind == "corrupt" else None
            pic = f"<img src='{uri}'>" if uri else "<div class='none'>no picture</div>"
            parts.append(f"<div class='thumb'>{pic}<b>{esc(Path(p['path']).name)}</b><br>{esc(p['detail'])}</div>")
        parts.append("</div>")

    if report["problems"]:
        parts.append(f"<h2>All problems</h2><table><tr><th>path</th><th>kind</th><th>detail</th></tr>")
        for p in report["problems"][:TABLE_ROWS]:
            parts.append(f"<tr><td>{esc(p['path'])}</td><td class='{p['severity']}'>{p['kind']}</td><td>{esc(p['detail'])}</td></tr>")
        parts.append("</table>")
        if len(report["problems"]) > TABLE_ROWS:
            parts.append(f"<p>{len(report['problems']) - TABLE_ROWS:,} more in audit.json.</p>")
    parts.append("</body></html>\n")
    return write_text(dest, "\n".join(parts))
