"""Near duplicates: the same picture re-encoded, resized, lightly cropped or recompressed, never two similar ones.

Two stages, because a perceptual hash alone is wrong both ways on simple images (digits, icons,
shapes on plain backgrounds): distinct pictures share a hash, and a 10 % crop moves it far away.

1. Candidates (cheap, scales to millions): a 64-bit perceptual hash of each image and of five 90 %
   crops of it (centre, four corners), searched by multi-index hashing (`near_pairs`). A copy that is
   a crop of another file hashes close to one of that file's crops.
2. Confirmation (strict, on the decoded pixels): both files as Kiln decodes them (EXIF applied, first
   frame, transparency composited), as 32x32 colour thumbnails lightly blurred (so re-encoding noise
   does not count), aligned by template matching over crops of 80-100 % of either side. The pair is
   the same picture when the aligned thumbnails differ by at most `max_difference` (mean absolute
   difference, 0-255, colour included). bench/similar.py measures precision and recall.

    from kiln.tasks.image.data.similar import confirm
    matches = confirm(paths, candidate_pairs, max_difference=5.0)   # {(i, j): Match}
"""

from __future__ import annotations

import itertools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("kiln.audit")

SIDE = 32  # thumbnail side the pixels are compared at
BLUR = 1.0  # Gaussian sigma (px at SIDE) applied before comparing: JPEG and resampling noise averages out
FRACTIONS = (1.0, 0.95, 0.9, 0.85, 0.8)  # share of each side one file may cover of the other (crops)
CROP = 0.1  # the crop hashes drop this share of each side (one centred crop, one per corner)
HASH_SOURCE = 64  # images are shrunk to at most this side (2x the hash's own 32 px) before hashing
MAX_DIFFERENCE = 5.0  # default: see BENCHMARKS.md (copies <= 4.5, distinct similar images >= 8 on the bench)
CANDIDATES_PER_HASH = 24  # nearest candidates kept per whole-image hash and hash range (near-identical folders)
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, None: 3}  # the first member of a group (kept) is the earliest split


@dataclass(frozen=True)
class Match:
    """How close two files are: `difference` (mean absolute difference of the aligned thumbnails, 0-255),
    `correlation` of those pixels, and `cover` (width, height share) when one is a crop of the other
    (`cropped`: 0 when the first file of the pair is the crop, 1 when the second is)."""

    difference: float
    correlation: float
    cover: tuple[float, float] = (1.0, 1.0)
    cropped: int = -1

    def describe(self) -> str:
        text = f"pixels differ by {self.difference:.1f}/255 on average (32 px colour thumbnails), correlation {self.correlation:.3f}"
        if self.cropped >= 0:
            text += f", one covers {self.cover[0]:.0%} x {self.cover[1]:.0%} of the other"
        return text


# ---------------------------------------------------------------------------------------------
# Stage 1: hashes and candidate pairs


def crop_hashes(img) -> list[str]:
    """Hex perceptual hashes of a decoded RGB or L Pillow image: the whole image first, then five crops."""
    import imagehash

    img = img.convert("L")  # what phash hashes anyway; shrinking the grey image first is ~4x cheaper
    if max(img.size) > HASH_SOURCE:
        img.thumbnail((HASH_SOURCE, HASH_SOURCE))
    w, h = img.size
    dx, dy = max(1, round(w * CROP)), max(1, round(h * CROP))
    boxes = [(0, 0, w, h), (dx // 2, dy // 2, w - (dx - dx // 2), h - (dy - dy // 2)),
             (0, 0, w - dx, h - dy), (dx, 0, w, h - dy), (0, dy, w - dx, h), (dx, dy, w, h)]
    if min(w, h) < 4:
        boxes = boxes[:1]
    return [str(imagehash.phash(img.crop(box) if box != (0, 0, w, h) else img)) for box in boxes]


def near_pairs(hashes: np.ndarray, distance: int) -> list[tuple[int, int]]:
    """Index pairs (i < j) of 64-bit hashes within `distance` bits, sorted (see `near_pair_array`)."""
    return [(int(a), int(b)) for a, b in near_pair_array(hashes, distance)]


def near_pair_array(hashes: np.ndarray, distance: int, query: np.ndarray | None = None, limit: int = 0) -> np.ndarray:
    """(M, 2) int64 array of index pairs (i < j) of 64-bit hashes within `distance` bits, by multi-index hashing.

    Split each hash into distance+1 bit ranges; two hashes that differ in at most `distance` bits
    agree exactly on at least one range (pigeonhole), so only hashes sharing a range value are compared.
    With `query` (a bool mask), only pairs with a query hash are searched, and with `limit` at most the
    `limit` nearest per query hash and range: a folder of near-identical images stays ~linear.
    """
    n = len(hashes)
    if n < 2 or distance < 0:
        return np.zeros((0, 2), np.int64)
    parts = min(distance + 1, 64)
    edges = np.linspace(0, 64, parts + 1).astype(int)
    found = []
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
            if query is not None:
                for i in np.flatnonzero(query[members]):
                    d = np.bitwise_count(block[i] ^ block)
                    d[i] = 65
                    hits = np.flatnonzero(d <= distance)
                    if limit and len(hits) > limit:
                        hits = hits[np.argsort(d[hits], kind="stable")[:limit]]
                    if len(hits):
                        found.append(np.stack([np.full(len(hits), members[i]), members[hits]], 1))
                continue
            for i in range(len(members) - 1):
                hits = np.flatnonzero(np.bitwise_count(block[i] ^ block[i + 1:]) <= distance)
                if len(hits):
                    found.append(np.stack([np.full(len(hits), members[i]), members[i + 1 + hits]], 1))
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = np.sort(np.concatenate(found).astype(np.int64), axis=1)
    return np.unique(pairs, axis=0)


def candidate_pairs(hash_lists: list[list[str]], distance: int) -> dict[tuple[int, int], tuple[int, bool]]:
    """{(i, j): (smallest hash distance, whole)} for files whose whole-image hash is within `distance` of
    the other's whole-image hash (whole=True) or of one of its crops. `hash_lists[i]`: whole image first."""
    owner = np.array([i for i, hashes in enumerate(hash_lists) for _ in hashes], np.int64)
    whole = np.array([k == 0 for hashes in hash_lists for k in range(len(hashes))], bool)
    values = np.array([int(h, 16) for hashes in hash_lists for h in hashes], dtype=np.uint64)
    pairs = near_pair_array(values, distance, query=whole, limit=CANDIDATES_PER_HASH)
    if not len(pairs):
        return {}
    a, b = pairs[:, 0], pairs[:, 1]
    keep = (owner[a] != owner[b]) & (whole[a] | whole[b])
    a, b = a[keep], b[keep]
    d = np.bitwise_count(values[a] ^ values[b]).astype(np.int64)
    both = whole[a] & whole[b]
    i, j = np.minimum(owner[a], owner[b]), np.maximum(owner[a], owner[b])
    order = np.lexsort((~both, d, j, i))  # per file pair: the smallest distance first, a whole-image match first
    found: dict[tuple[int, int], tuple[int, bool]] = {}
    for k in order:
        found.setdefault((int(i[k]), int(j[k])), (int(d[k]), bool(both[k])))
    return found


# ---------------------------------------------------------------------------------------------
# Stage 2: confirmation on the pixels


def thumbnail(path: str, background=(255, 255, 255)) -> np.ndarray | None:
    """(SIDE, SIDE, 3) float32 of the file as Kiln decodes it, blurred by BLUR; None when unreadable."""
    import cv2
    from PIL import Image, ImageOps

    from kiln.tasks.image.data import alpha

    try:
        with Image.open(path) as img:
            img.draft("RGB", (SIDE * 4, SIDE * 4))  # JPEG: decode at a reduced scale, still 4x the thumbnail
            img.seek(0)
            rgb = alpha.flatten(ImageOps.exif_transpose(img), background, 3)
    except Exception:
        return None
    h, w = rgb.shape[:2]
    interpolation = cv2.INTER_AREA if min(h, w) >= SIDE else cv2.INTER_LINEAR
    small = cv2.resize(rgb, (SIDE, SIDE), interpolation=interpolation).astype(np.float32)
    return cv2.GaussianBlur(small, (0, 0), BLUR)


def compare(a: np.ndarray, b: np.ndarray) -> Match:
    """Align two thumbnails (either may be a crop of the other) and measure how far apart they are."""
    import cv2

    best = None
    for cropped, (ref, other) in enumerate(((a, b), (b, a))):
        for fw, fh in itertools.product(FRACTIONS, FRACTIONS):
            if cropped and fw == fh == 1.0:
                continue  # the same alignment as the first direction
            tw, th = max(1, round(fw * SIDE)), max(1, round(fh * SIDE))
            t = other if (tw, th) == (SIDE, SIDE) else cv2.resize(other, (tw, th), interpolation=cv2.INTER_AREA)
            score = cv2.matchTemplate(ref, t, cv2.TM_SQDIFF)
            low, _, (x, y), _ = cv2.minMaxLoc(score)
            msd = low / t.size
            if best is None or msd < best[0]:
                best = (msd, ref[y:y + th, x:x + tw], t, (fw, fh), cropped)
    _, patch, t, cover, cropped = best
    difference = float(np.abs(patch - t).mean())
    p, q = patch.ravel() - patch.mean(), t.ravel() - t.mean()
    norm = float(np.sqrt((p * p).sum() * (q * q).sum()))
    correlation = float((p * q).sum() / norm) if norm > 1e-6 else 1.0
    # cropped=0: the second file matched a region of the first, so the second is the crop
    return Match(round(difference, 2), round(correlation, 4), cover, -1 if cover == (1.0, 1.0) else 1 - cropped)


def confirm(paths: list[str], pairs, max_difference: float = MAX_DIFFERENCE, background=(255, 255, 255),
            workers: int = 0, joined=None) -> dict[tuple[int, int], Match]:
    """{(i, j): Match} for the candidate pairs (indices into `paths`) that are the same picture.

    `joined(i, j) -> bool`: pairs already in one group through other confirmed pairs are skipped
    (a folder of near-identical renders gives ~n^2 candidates but only ~n comparisons)."""
    pairs = list(pairs)  # in the caller's order (closest first)
    needed = sorted({i for pair in pairs for i in pair})
    if not needed:
        return {}
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:  # Pillow decodes without the GIL
        thumbs = dict(zip(needed, pool.map(lambda i: thumbnail(paths[i], background), needed)))
    out = {}
    for i, j in pairs:
        if thumbs[i] is None or thumbs[j] is None or (joined is not None and joined(i, j)):
            continue
        match = compare(thumbs[i], thumbs[j])
        if match.difference <= max_difference:
            out[(i, j)] = match
            if joined is not None:
                joined(i, j, True)
    return out


# ---------------------------------------------------------------------------------------------
# Groups of copies, and what the audit says about them


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


def find_duplicates(rows: list[dict], near_distance: int, near_difference: float = MAX_DIFFERENCE,
                    background=(255, 255, 255)) -> tuple[list[list[int]], dict]:
    """Groups (indices into rows) of readable files that are exact copies or the same picture, and the
    {(i, j): (hash distance, Match)} of every confirmed near pair. Rows: the audit's scanned files."""
    ok = [i for i, r in enumerate(rows) if r.get("ok") and r.get("sha256")]
    union = _Union(len(rows))
    first_by_sha: dict[str, int] = {}
    for i in ok:
        j = first_by_sha.setdefault(rows[i]["sha256"], i)
        if j != i:
            union.union(i, j)
    hashed = [i for i in ok if rows[i].get("phashes")]
    near: dict[tuple[int, int], tuple[int, Match]] = {}
    if near_distance >= 0 and hashed:
        found = candidate_pairs([rows[i]["phashes"] for i in hashed], near_distance)
        pairs = {(hashed[a], hashed[b]): d for (a, b), (d, _) in found.items()
                 if rows[hashed[a]]["sha256"] != rows[hashed[b]]["sha256"]}
        paths = [r["path"] for r in rows]

        def joined(a: int, b: int, join: bool = False) -> bool:
            if join:
                union.union(a, b)
            return union.find(a) == union.find(b)

        order = sorted(pairs, key=lambda p: (pairs[p], p))  # the closest hashes first: most groups form early
        confirmed = confirm(paths, order, near_difference, background, joined=joined)
        for (a, b), match in confirmed.items():
            near[(a, b)] = (pairs[(a, b)], match)
        if pairs:
            log.info("audit: %d of %d near-duplicate candidate pair(s) confirmed on the pixels", len(confirmed), len(pairs))
    groups: dict[int, list[int]] = {}
    for i in ok:
        groups.setdefault(union.find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1], near


def _closeness(near: dict, i: int, group: list[int], rows: list[dict]) -> tuple[int, str, float]:
    """(other member, how close i is to it, difference) for the closest confirmed partner of row i."""
    best = None
    for j in group:
        if j == i:
            continue
        if rows[i]["sha256"] == rows[j]["sha256"]:
            return j, "an exact copy", 0.0
        pair = near.get((min(i, j), max(i, j)))
        if pair and (best is None or pair[1].difference < best[2]):
            best = (j, f"{pair[1].describe()}; perceptual hash distance {pair[0]}", pair[1].difference)
    if best is None:  # the same picture through another member (a chain of confirmed pairs)
        j = next(j for j in group if j != i)
        return j, "the same picture through another copy in its group", float("nan")
    return best


def duplicate_problems(rows: list[dict], group: list[int], near: dict | None = None) -> tuple[dict, list[tuple[int, str, str]], list[int]]:
    """Describe one duplicate group: (summary, [(row, kind, detail)], rows to quarantine).

    Members are ordered train < val < test, then by path; the first is the one kept.
    """
    near = near or {}
    group = sorted(group, key=lambda i: (SPLIT_ORDER.get(rows[i].get("split"), 3), rows[i]["path"]))
    first = rows[group[0]]
    labels = sorted({rows[i]["label"] for i in group})
    splits = sorted({rows[i]["split"] for i in group if rows[i].get("split")}, key=lambda s: SPLIT_ORDER[s])
    exact = len({rows[i]["sha256"] for i in group}) == 1
    pairs = [near[(a, b)] for a in group for b in group if (a, b) in near]
    distance = max([d for d, _ in pairs], default=0)
    difference = max([m.difference for _, m in pairs], default=0.0)
    same = "exact copies" if exact else f"the same picture (pixels differ by up to {difference:.1f}/255 on average)"
    problems, move = [], []
    if len(labels) > 1:
        for i in group:
            others = sorted({rows[j]["label"] for j in group} - {rows[i]["label"]})
            j, how, _ = _closeness(near, i, group, rows)
            problems.append((i, "label_conflict", f"{same}: the same image is labelled {rows[i]['label']!r} here and "
                                                  f"{', '.join(map(repr, others))} in {len(group) - 1} other file(s), e.g. "
                                                  f"{rows[j]['path']} ({how})"))
        move += group
    if len(splits) > 1:
        for i in group:
            others = sorted({rows[j]["split"] for j in group} - {rows[i]["split"]}, key=lambda s: SPLIT_ORDER[s])
            j, how, _ = _closeness(near, i, group, rows)
            problems.append((i, "split_leak", f"{same}: this {rows[i]['split']} image is also in {', '.join(others)} "
                                              f"({rows[j]['path']}: {how}), so evaluation sees training data"))
        move += [i for i in group if rows[i]["split"] != splits[0]]
    if len(labels) == 1 and len(splits) <= 1:
        leak = "" if splits else "; when Kiln splits the data, copies can land in both train and test"
        for i in group[1:]:
            if rows[i]["sha256"] == first["sha256"]:
                problems.append((i, "duplicate", f"exact copy of {first['path']}{leak}"))
            else:
                j, how, _ = _closeness(near, i, group, rows)
                problems.append((i, "near_duplicate", f"the same picture as {rows[j]['path']} ({how}){leak}"))
        move += group[1:]
    summary = {"paths": [rows[i]["path"] for i in group], "exact": exact, "distance": distance,
               "difference": round(difference, 2), "labels": labels, "splits": splits}
    return summary, problems, sorted(set(move))
