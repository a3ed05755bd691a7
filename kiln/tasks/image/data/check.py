"""Decode every file once before training, so a bad file never crashes an epoch.

Returns per-file facts (size, mode, EXIF orientation) that also feed the automatic image size and
channels. Bombs are refused from the header, before any pixel is decoded.
"""

from __future__ import annotations

import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image

log = logging.getLogger("kiln.data")

GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def inspect_file(path: str, max_pixels: int, visit=None) -> dict:
    """Open and fully decode one image; never raises. `visit(img) -> dict` adds facts from the decoded image."""
    info = {"path": path, "ok": False, "error": "", "width": 0, "height": 0, "mode": "", "format": "", "orientation": 1, "frames": 1}
    try:
        if os.path.getsize(path) == 0:
            info["error"] = "empty: zero bytes"
            return info
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Image.MAX_IMAGE_PIXELS = None  # our own limit below is the one that counts
            with Image.open(path) as img:
                info.update(width=img.width, height=img.height, mode=img.mode, format=img.format or "",
                            frames=getattr(img, "n_frames", 1))
                if img.width * img.height > max_pixels:
                    info["error"] = f"bomb: {img.width}x{img.height} = {img.width * img.height:,} pixels is over max_pixels={max_pixels:,}"
                    return info
                img.load()  # before getexif: PNG's getexif loads pixels and would swallow a decode error
                try:
                    info["orientation"] = int(img.getexif().get(0x0112, 1) or 1)
                except Exception:
                    info["orientation"] = 1
                if visit is not None:
                    info.update(visit(img))
        info["ok"] = True
    except Exception as err:  # every decoder failure is a data problem, not a Kiln bug
        info["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
    return info


def scan(paths: list[str], max_pixels: int, workers: int | None = None, progress: bool = False) -> pd.DataFrame:
    """Inspect files in parallel threads (decoders release the GIL); one row per path, same order.

    `progress` shows a bar on stderr (when it is a terminal)."""
    import sys

    from tqdm import tqdm

    workers = workers or min(32, (os.cpu_count() or 1) * 2)
    columns = list(inspect_file("", 1))
    # Chunks, each turned into a small frame: one future per 512 files (not per file) and no list of
    # 100k dicts, so memory stays near the size of the final table.
    chunks = [paths[i:i + 512] for i in range(0, len(paths), 512)]
    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(paths), desc="kiln check", unit="file", file=sys.stderr,
                                                    disable=None if progress else True) as bar:
        def run(chunk):
            part = pd.DataFrame([inspect_file(p, max_pixels) for p in chunk], columns=columns)
            bar.update(len(chunk))
            return part

        parts = list(pool.map(run, chunks))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


DIRECT_FORMATS = {"JPEG", "PNG", "GIF", "WEBP"}  # formats the pipeline decodes without an EXIF rotation step


def needs_pil(facts: pd.DataFrame) -> np.ndarray:
    """Files the pipeline must decode with Pillow: EXIF-rotated ones, and what the fast decoders (libjpeg-turbo,
    OpenCV) may not read (BMP variants, a TIFF named .jpg, animated WebP)."""
    use = np.zeros(len(facts), bool)
    if "orientation" in facts:
        use |= (facts["orientation"] != 1).to_numpy()
    if "format" in facts:
        use |= (~facts["format"].isin(DIRECT_FORMATS) | ((facts["frames"] > 1) & (facts["format"] != "GIF"))).to_numpy()
    return use


def error_kind(error: str) -> str:
    """The stable name of a decode failure (the `kind` kiln audit reports): empty, bomb, not_image, truncated, corrupt."""
    if error.startswith("empty"):
        return "empty"
    if error.startswith("bomb"):
        return "bomb"
    if error.startswith("UnidentifiedImageError"):
        return "not_image"
    return "truncated" if "truncated" in error.lower() else "corrupt"


def warn_skipped(errors, total: int, report_path: str | None = None) -> None:
    """One warning that counts left-out files by kind and names where the details are."""
    kinds = pd.Series([error_kind(e) for e in errors], dtype=object).value_counts()
    if kinds.empty:
        return
    summary = ", ".join(f"{n} {k}" for k, n in kinds.items())
    where = f"; details in {report_path}" if report_path else "; kiln audit DATA explains each file"
    log.warning("data: left out %d of %d file(s) that cannot be decoded (%s)%s", int(kinds.sum()), total, summary, where)


def drop_unreadable(frame: pd.DataFrame, facts: pd.DataFrame, report_path: str | None = None, warn: bool = True) -> pd.DataFrame:
    """Leave out files that failed to decode, with one warning that counts them (unless `warn=False`)."""
    bad = ~facts["ok"].to_numpy()
    if bad.any() and warn:
        warn_skipped(facts.loc[bad, "error"], len(frame), report_path)
    return frame.loc[~bad].reset_index(drop=True)
