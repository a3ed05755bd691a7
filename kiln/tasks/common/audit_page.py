"""The parts of a self-contained audit.html that several tasks' audit pages share: the style sheet and histogram
charts as base64 PNG (no network)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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


__all__ = ["CSS", "histogram_png"]
