"""`kiln audit DATA`: decode every file, explain every problem, find duplicates and leaks. Read-only.

Every file of a source (class folders, pre-split folders or a CSV) is fully decoded with
`check.inspect_file` in a process pool over all cores, hashed (sha256 of the bytes, perceptual hash
of the pixels) and given zero or more problems, each `{"path", "kind", "severity", "detail"}`.
`KINDS` lists the stable kind names:

- severity "error": files Kiln cannot train on (`kiln train` leaves them out);
- severity "warning": files it trains on that probably hurt (duplicates, leaks, tiny or extreme images);
- severity "info": formats Kiln converts on the fly (CMYK, 16-bit, alpha, palette, animation, EXIF).

    from kiln.tasks.image.data.audit import audit
    report = audit("path/to/images", out="runs/audit")
    report["problems"][0]  # {"path": ..., "kind": "truncated", "severity": "error", "detail": ...}
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kiln.tasks.image.data import check

log = logging.getLogger("kiln.audit")

# kind -> (severity, what it means). Names are stable: scripts and CI may match on them.
KINDS: dict[str, tuple[str, str]] = {
    "empty": ("error", "zero bytes"),
    "not_image": ("error", "not an image Pillow can identify (text, HTML, a different file type)"),
    "truncated": ("error", "the file ends before the image data does"),
    "corrupt": ("error", "the image data cannot be decoded"),
    "bomb": ("error", "more pixels than max_pixels (a decompression bomb), refused from the header"),
    "label_conflict": ("warning", "the same image (exact or near) appears under two or more labels"),
    "split_leak": ("warning", "the same image (exact or near) appears in two or more splits"),
    "duplicate": ("warning", "a byte-for-byte copy of another file with the same label"),
    "near_duplicate": ("warning", "looks the same as another file (perceptual hash within near_distance)"),
    "too_small": ("warning", "shorter side under min_side"),
    "extreme_aspect": ("warning", "long side over max_aspect times the short side"),
    "wrong_extension": ("info", "the extension names another format; Kiln reads files by content"),
    "cmyk": ("info", "CMYK colour; converted to RGB"),
    "high_bit_depth": ("info", "16 bits per channel; scaled to 8 bits"),
    "alpha": ("info", "has transparency; the alpha channel is dropped"),
    "palette": ("info", "palette (indexed) colours; expanded to RGB"),
    "animated": ("info", "several frames; the first frame is used"),
    "exif_orientation": ("info", "EXIF says to rotate or flip; Kiln applies it"),
}
SEVERITIES = ("error", "warning", "info")
EXTENSION_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".bmp": "BMP", ".webp": "WEBP"}
ORIENTATIONS = {2: "mirrored", 3: "rotated 180°", 4: "flipped upside down", 5: "mirrored and rotated 90°",
                6: "rotated 90° clockwise", 7: "mirrored and rotated 90° clockwise", 8: "rotated 90° counter-clockwise"}
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, None: 3}
POOL_MIN_FILES = 300  # below this, starting worker processes (~1.5 s each) costs more than it saves


class AuditOptions(BaseModel):
    """Limits of `kiln audit` (key=value on the command line)."""

    model_config = ConfigDict(extra="forbid")

    max_pixels: int = Field(89_478_485, ge=1, description="refuse images with more pixels than this, from the header (same default as data.max_pixels)")
    min_side: int = Field(16, ge=1, description="flag images whose shorter side is under this many pixels")
    max_aspect: float = Field(5.0, ge=1.0, description="flag images whose long side is over this many times the short side")
    near_distance: int = Field(4, ge=-1, le=64, description="perceptual-hash bit distance that counts as a near duplicate (-1 turns the search off)")
    workers: int = Field(0, ge=0, description="decoding processes (0: one per CPU core; 1: no pool)")
    thumbnails: int = Field(12, ge=0, le=500, description="example thumbnails per problem kind in audit.html")


# ---------------------------------------------------------------------------------------------
# Per-file scan (runs in worker processes)


def _visit(img) -> dict:
    """Facts from the decoded image: perceptual hash and transparency."""
    import imagehash

    out = {"phash": "", "transparent": False}
    try:
        out["transparent"] = bool(img.has_transparency_data)
    except Exception:
        pass
    try:
        frame = img if img.mode in ("RGB", "L") else img.convert("RGB")
        out["phash"] = str(imagehash.phash(frame))
    except Exception:  # a hash we cannot compute only means no near-duplicate search for this file
        pass
    return out


def _png_bit_depth(head: bytes) -> int:
    """Bits per channel from a PNG IHDR (Pillow opens 16-bit RGB as 8-bit RGB without saying so)."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 25:
        return head[24]
    return 0


def scan_file(path: str, max_pixels: int) -> dict:
    """Decode one file and hash it; never raises."""
    info = {"path": path, "bytes": 0, "sha256": "", "bit_depth": 0, "head": b""}
    try:
        info["bytes"] = os.path.getsize(path)
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            head = fh.read(64)
            digest.update(head)
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        info.update(sha256=digest.hexdigest(), bit_depth=_png_bit_depth(head), head=head[:16])
    except OSError as err:
        info.update(ok=False, error=f"{type(err).__name__}: {err}", width=0, height=0, mode="", format="", orientation=1, frames=1)
        return info
    info.update(check.inspect_file(path, max_pixels, visit=_visit))
    return info


def _scan_chunk(paths: list[str], max_pixels: int) -> list[dict]:
    return [scan_file(p, max_pixels) for p in paths]


def scan(paths: list[str], max_pixels: int, workers: int = 0, progress: bool = True) -> list[dict]:
    """`scan_file` over every path, in a process pool (decoding and hashing hold the GIL), in order."""
    from tqdm import tqdm

    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(paths), desc="kiln audit", unit="file", file=sys.stderr, disable=None if progress else True)
    results: list[dict] = []
    try:
        if workers == 1 or len(paths) < POOL_MIN_FILES:
            for p in paths:
                results.append(scan_file(p, max_pixels))
                bar.update(1)
            return results
        import multiprocessing

        size = max(16, min(256, len(paths) // (workers * 8) or 16))
        chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
        # fork starts workers in milliseconds; once TensorFlow (and its threads) is loaded, spawn fresh ones
        # (spawn re-imports the caller's __main__: a script must call audit under `if __name__ == "__main__":`)
        method = "spawn" if "tensorflow" in sys.modules else "fork"
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
            for chunk in pool.map(_scan_chunk, chunks, [max_pixels] * len(chunks)):
                results.extend(chunk)
                bar.update(len(chunk))
        return results
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------------
# Problems of one file


def _unreadable_kind(info: dict) -> tuple[str, str]:
    error = info.get("error", "")
    kind = check.error_kind(error)
    if kind == "empty":
        return kind, "zero bytes"
    if kind == "bomb":
        return kind, (f"{info['width']}x{info['height']} = {info['width'] * info['height']:,} pixels is over "
                      f"max_pixels={error.rsplit('=', 1)[-1]}; refused from the header without decoding")
    if kind == "not_image":
        return kind, f"not an image Pillow can identify (starts with {info.get('head', b'')[:8]!r})"
    if kind == "truncated":
        return kind, f"cut short: {error}"
    return kind, f"cannot be decoded: {error}"


def file_problems(info: dict, options: AuditOptions) -> list[tuple[str, str]]:
    """(kind, detail) for everything unusual about one scanned file (duplicates come later)."""
    out = []
    fmt = info.get("format") or ""
    suffix = Path(info["path"]).suffix.lower()
    if not info.get("ok"):
        out.append(_unreadable_kind(info))
    claimed = EXTENSION_FORMATS.get(suffix)
    if fmt and claimed and fmt != claimed:
        readable = "Kiln reads it by content" if info.get("ok") else "it cannot be read either"
        out.append(("wrong_extension", f"{fmt} data in a {suffix} file; {readable}"))
    if not info.get("ok"):
        return out
    w, h = info["width"], info["height"]
    if min(w, h) < options.min_side:
        out.append(("too_small", f"{w}x{h} is under min_side={options.min_side}; upscaling adds no detail"))
    aspect = max(w, h) / max(1, min(w, h))
    if aspect > options.max_aspect:
        out.append(("extreme_aspect", f"{w}x{h} has aspect {aspect:.1f}:1, over max_aspect={options.max_aspect:g}; "
                                      "resize=stretch distorts it and crop or pad lose most of it"))
    mode = info.get("mode", "")
    if mode == "CMYK":
        out.append(("cmyk", "CMYK colour; Kiln converts it to RGB"))
    if info.get("bit_depth", 0) == 16 or mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        depth = "16-bit" if info.get("bit_depth") == 16 or mode.startswith("I;16") else f"mode {mode}"
        out.append(("high_bit_depth", f"{depth} {fmt}; Kiln scales it to 8 bits per channel"))
    if info.get("transparent") or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        out.append(("alpha", f"mode {mode} with transparency; Kiln drops the alpha channel"))
    if mode == "P" and fmt != "GIF":
        out.append(("palette", f"palette image ({fmt}, mode P); Kiln expands it to RGB"))
    if info.get("frames", 1) > 1:
        out.append(("animated", f"{info['frames']} frames; Kiln uses the first frame"))
    orientation = info.get("orientation", 1)
    if orientation not in (0, 1):
        what = ORIENTATIONS.get(orientation, f"value {orientation}")
        out.append(("exif_orientation", f"EXIF orientation {orientation} ({what}); Kiln applies it (decodes this file with Pillow)"))
    return out


# ---------------------------------------------------------------------------------------------
# Duplicates


class _Union:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_pairs(hashes: np.ndarray, distance: int) -> list[tuple[int, int]]:
    """Index pairs of 64-bit hashes within `distance` bits, by multi-index hashing.

    Split each hash into distance+1 bit ranges; two hashes that differ in at most `distance` bits
    agree exactly on at least one range (pigeonhole), so only hashes sharing a range value are compared.
    """
    n = len(hashes)
    if n < 2 or distance < 0:
        return []
    parts = min(distance + 1, 64)
    edges = np.linspace(0, 64, parts + 1).astype(int)
    pairs: set[tuple[int, int]] = set()
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = np.uint64((1 << (hi - lo)) - 1)
        keys = (hashes >> np.uint64(lo)) & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], n]
        for s, e in zip(starts, ends):
            if e - s < 2:
                continue
            members = order[s:e]
            block = hashes[members]
            for i in range(len(members) - 1):
                d = np.bitwise_count(block[i] ^ block[i + 1:])
                for j in np.flatnonzero(d <= distance):
                    a, b = int(members[i]), int(members[i + 1 + j])
                    pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


def find_duplicates(rows: list[dict], near_distance: int) -> list[list[int]]:
    """Groups (indices into rows) of readable files that are exact copies or near duplicates."""
    ok = [i for i, r in enumerate(rows) if r.get("ok") and r.get("sha256")]
    union = _Union(len(rows))
    first_by_sha: dict[str, int] = {}
    for i in ok:
        j = first_by_sha.setdefault(rows[i]["sha256"], i)
        if j != i:
            union.union(i, j)
    hashed = [i for i in ok if rows[i].get("phash")]
    if near_distance >= 0 and hashed:
        values = np.array([int(rows[i]["phash"], 16) for i in hashed], dtype=np.uint64)
        for a, b in near_pairs(values, near_distance):
            union.union(hashed[a], hashed[b])
    groups: dict[int, list[int]] = {}
    for i in ok:
        groups.setdefault(union.find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def _phash_distance(a: dict, b: dict) -> int:
    if not a.get("phash") or not b.get("phash"):
        return -1
    return int(bin(int(a["phash"], 16) ^ int(b["phash"], 16)).count("1"))


def duplicate_problems(rows: list[dict], group: list[int]) -> tuple[dict, list[tuple[int, str, str]], list[int]]:
    """Describe one duplicate group: (summary, [(row, kind, detail)], rows to quarantine).

    Members are ordered train < val < test, then by path; the first is the one kept.
    """
    group = sorted(group, key=lambda i: (SPLIT_ORDER.get(rows[i].get("split"), 3), rows[i]["path"]))
    first = rows[group[0]]
    labels = sorted({rows[i]["label"] for i in group})
    splits = sorted({rows[i]["split"] for i in group if rows[i].get("split")}, key=lambda s: SPLIT_ORDER[s])
    exact = len({rows[i]["sha256"] for i in group}) == 1
    distance = max(0, max(_phash_distance(first, rows[i]) for i in group))
    same = "exact copies" if exact else f"near duplicates (perceptual hash distance up to {distance})"
    problems, move = [], []
    if len(labels) > 1:
        for i in group:
            others = sorted({rows[j]["label"] for j in group} - {rows[i]["label"]})
            problems.append((i, "label_conflict", f"{same}: the same image is labelled {rows[i]['label']!r} here and "
                                                  f"{', '.join(map(repr, others))} in {len(group) - 1} other file(s), e.g. {_other(rows, group, i)}"))
        move += group
    if len(splits) > 1:
        for i in group:
            others = sorted({rows[j]["split"] for j in group} - {rows[i]["split"]}, key=lambda s: SPLIT_ORDER[s])
            problems.append((i, "split_leak", f"{same}: this {rows[i]['split']} image is also in {', '.join(others)} "
                                              f"({_other(rows, group, i)}), so evaluation sees training data"))
        move += [i for i in group if rows[i]["split"] != splits[0]]
    if len(labels) == 1 and len(splits) <= 1:
        leak = "" if splits else "; when Kiln splits the data, copies can land in both train and test"
        for i in group[1:]:
            if rows[i]["sha256"] == first["sha256"]:
                problems.append((i, "duplicate", f"exact copy of {first['path']}{leak}"))
            else:
                d = _phash_distance(first, rows[i])
                problems.append((i, "near_duplicate", f"looks the same as {first['path']} (perceptual hash distance {d}){leak}"))
        move += group[1:]
    summary = {"paths": [rows[i]["path"] for i in group], "exact": exact, "distance": distance,
               "labels": labels, "splits": splits}
    return summary, problems, sorted(set(move))


def _other(rows, group, i) -> str:
    j = next(j for j in group if j != i)
    return rows[j]["path"]


# ---------------------------------------------------------------------------------------------
# The audit


def class_balance(counts: dict[str, int]) -> dict:
    """Imbalance ratio (largest / smallest class) and sklearn's 'balanced' weights n / (k * count)."""
    usable = {c: n for c, n in counts.items() if n > 0}
    if not usable:
        return {"ratio": None, "largest": None, "smallest": None, "class_weights": {}}
    total, k = sum(usable.values()), len(usable)
    largest = max(usable, key=usable.get)
    smallest = min(usable, key=usable.get)
    return {"ratio": round(usable[largest] / usable[smallest], 3), "largest": largest, "smallest": smallest,
            "class_weights": {c: round(total / (k * n), 4) for c, n in usable.items()}}


def audit(data: str | Path, out: str | Path | None = None, options: AuditOptions | dict | None = None,
          progress: bool = True, write: bool = True) -> dict:
    """Audit a source and (when `write`) save `audit.json` and `audit.html` under `out`.

    Args:
        data: a folder per class, a pre-split folder or a CSV (anything `kiln train` accepts but shards).
        out: output folder. Defaults to `runs/audit` (auto-numbered).
        options: `AuditOptions` or a dict of its fields. Defaults to `AuditOptions()`.
        progress: show a progress bar on stderr (when it is a terminal). Defaults to `True`.
        write: write the report files. Defaults to `True`.

    Returns:
        The report (what `audit.json` holds), with `"out"` set to the output folder.
    """
    from kiln import __version__
    from kiln.io import FORMAT_VERSION
    from kiln.tasks.image.data import sources

    options = options if isinstance(options, AuditOptions) else AuditOptions(**(options or {}))
    started = time.time()
    frame = sources.discover(data, component="audit")
    paths = frame["path"].tolist()
    rows = scan(paths, options.max_pixels, options.workers, progress)
    for row, label, split in zip(rows, frame["label"], frame["split"]):
        row["label"] = label
        row["split"] = split if isinstance(split, str) and split else None
    seconds = time.time() - started

    problems: list[dict] = []
    quarantine: set[str] = set()
    for row in rows:
        for kind, detail in file_problems(row, options):
            problems.append({"path": row["path"], "kind": kind, "severity": KINDS[kind][0], "detail": detail})
            if KINDS[kind][0] == "error":
                quarantine.add(row["path"])
            elif kind in ("too_small", "extreme_aspect"):
                quarantine.add(row["path"])
    groups = []
    for group in find_duplicates(rows, options.near_distance):
        summary, found, move = duplicate_problems(rows, group)
        groups.append(summary)
        for i, kind, detail in found:
            problems.append({"path": rows[i]["path"], "kind": kind, "severity": KINDS[kind][0], "detail": detail})
        quarantine.update(rows[i]["path"] for i in move)
    groups.sort(key=lambda g: g["paths"][0])
    rank = {k: n for n, k in enumerate(KINDS)}
    problems.sort(key=lambda p: (rank[p["kind"]], p["path"]))

    classes = sorted(frame["label"].unique())
    counts = {c: int(n) for c, n in frame["label"].value_counts().reindex(classes).items()}
    bad = {p["path"] for p in problems if p["severity"] == "error"}
    usable = {c: 0 for c in classes}
    for row in rows:
        if row["path"] not in bad:
            usable[row["label"]] += 1
    split_counts = None
    if frame["split"].notna().any():
        split_counts = {s: {c: int(n) for c, n in frame[frame["split"] == s]["label"].value_counts().sort_index().items()}
                        for s in ("train", "val", "test") if (frame["split"] == s).any()}
    report = {
        "format_version": FORMAT_VERSION,
        "kiln_version": __version__,
        "source": str(Path(data).expanduser().resolve()),
        "source_kind": frame.attrs.get("kind", ""),
        "files": len(rows),
        "bytes": int(sum(r["bytes"] for r in rows)),
        "readable": int(sum(bool(r.get("ok")) for r in rows)),
        "problems": problems,
        "duplicates": [g["paths"] for g in groups],
        "duplicate_groups": groups,
        "classes": counts,
        "usable_classes": usable,
        "splits": split_counts,
        "imbalance": class_balance(usable),
        "kinds": {k: sum(p["kind"] == k for p in problems) for k in KINDS if any(p["kind"] == k for p in problems)},
        "severities": {s: sum(p["severity"] == s for p in problems) for s in SEVERITIES},
        "problem_files": len({p["path"] for p in problems}),
        "quarantine": sorted(quarantine),
        "options": options.model_dump(),
        "seconds": round(seconds, 3),
        "files_per_second": round(len(rows) / max(seconds, 1e-9), 1),
    }
    if write:
        from kiln.tasks.image.data.audit_report import write_html
        from kiln.io import write_json
        from kiln.run import new_run_dir

        out_dir = Path(out) if out else new_run_dir(None, "runs", None, default_name="audit")
        out_dir.mkdir(parents=True, exist_ok=True)
        report["out"] = str(out_dir)
        write_json(out_dir / "audit.json", report)
        write_html(report, rows, out_dir / "audit.html", options.thumbnails)
    return report


def summary_lines(report: dict) -> list[str]:
    """The short summary `kiln audit` prints."""
    lines = [f"kiln: audited {report['files']:,} files in {len(report['classes'])} classes "
             f"({report['seconds']:.1f} s, {report['files_per_second']:,.0f} files/s)"]
    if report["problems"]:
        sev = report["severities"]
        lines.append(f"kiln: {len(report['problems'])} problem(s) in {report['problem_files']} file(s): "
                     f"{sev['error']} error, {sev['warning']} warning, {sev['info']} info")
        lines.append("kiln:   " + ", ".join(f"{n} {k}" for k, n in report["kinds"].items()))
    else:
        lines.append("kiln: no problems found")
    if report["duplicates"]:
        lines.append(f"kiln: {len(report['duplicates'])} group(s) of duplicate images")
    imb = report["imbalance"]
    if imb["ratio"] == 1:
        lines.append(f"kiln: classes balanced ({report['usable_classes'][imb['largest']]} usable images each)")
    elif imb["ratio"] is not None:
        counts = report["usable_classes"]
        note = "; consider class_weight=balanced" if imb["ratio"] >= 3 else ""
        lines.append(f"kiln: class imbalance {imb['ratio']:.2f} (largest {imb['largest']} {counts[imb['largest']]}, "
                     f"smallest {imb['smallest']} {counts[imb['smallest']]}){note}")
    if report.get("out"):
        lines.append(f"kiln: report {Path(report['out']) / 'audit.html'} and audit.json")
    return lines


def strict_failures(report: dict, ignore: list[str] | None = None) -> list[dict]:
    """Problems that make `strict=true` exit 1: every problem whose kind is not ignored."""
    ignore = set(ignore or [])
    return [p for p in report["problems"] if p["kind"] not in ignore]
