"""Benchmark helpers: generated data under bench/_data, timing, ratio tables."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DATA = ROOT / "bench" / "_data"


def jpeg_folder(n: int = 2000, size=(240, 320), classes: int = 4, name: str | None = None) -> Path:
    """n JPEGs (H x W = size) in a folder per class; generated once and reused."""
    from synth import make_image_folder

    root = DATA / (name or f"jpeg_{n}_{size[1]}x{size[0]}")
    marker = root / ".complete"
    if not marker.exists():
        make_image_folder(root, classes=classes, per_class=n // classes, size=size, fmt="jpg", seed=0)
        marker.write_text("ok\n")
    return root


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])
