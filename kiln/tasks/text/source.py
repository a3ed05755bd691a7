"""Reading labelled text: a folder per class of .txt files (also pre-split train/val/test), or a CSV / TSV /
JSON Lines file with a text column and a label column (and an optional split column).

Bytes that are not UTF-8 are read with replacement characters and counted per text (`bad_bytes`);
texts longer than `max_chars` are cut there (`truncated`). Nothing in the user's files changes.

    rows = read_texts("reviews.csv", text="review", label="stars")   # DataFrame: text, label, split, where, ...
"""

from __future__ import annotations

import difflib
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.errors import DataError, received

log = logging.getLogger("kiln.text")

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")
SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val", "test": "test"}
LABEL_NAMES = ("label", "target", "class", "category", "labels", "y")
REPLACEMENT = "\ufffd"


def decode(data: bytes) -> tuple[str, int]:
    """UTF-8 (a BOM dropped) with replacement; the count of replacement characters it added."""
    text = data.decode("utf-8-sig", errors="replace")
    return text, text.count(REPLACEMENT) - data.count(REPLACEMENT.encode())


def _cut(texts: pd.Series, max_chars: int) -> tuple[pd.Series, np.ndarray]:
    lengths = texts.str.len().to_numpy()
    return texts.str.slice(0, max_chars), lengths > max_chars


def is_text_folder(path: Path, limit: int = 2000) -> bool:
    """A folder whose class folders (or train/val/test/<class> folders) hold .txt files and no images."""
    for depth, pattern in enumerate(("*/*.txt", "*/*/*.txt")):
        for i, _ in enumerate(path.glob(pattern)):
            return True
    return False


def read_folder(root: Path, max_chars: int, component: str = "train") -> pd.DataFrame:
    """DIR/<class>/*.txt, or DIR/{train,val,test}/<class>/*.txt (the text_dataset_from_directory layout)."""
    top = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    presplit = bool(top) and all(p.name.lower() in SPLIT_NAMES for p in top)
    rows = []
    for folder in top:
        classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if presplit else [folder]
        for cls in classes:
            for f in sorted(cls.glob("*.txt")):
                text, bad = decode(f.read_bytes())
                rows.append((text, cls.name, SPLIT_NAMES[folder.name.lower()] if presplit else None, str(f), bad))
    if not rows:
        raise DataError(received(component, "data", root, "it holds no .txt files in class folders",
                                 "Lay it out as DIR/<class>/*.txt (or DIR/train/<class>/*.txt), or pass a CSV with text=COLUMN"))
    frame = pd.DataFrame(rows, columns=["text", "label", "split", "where", "bad_bytes"])
    frame["text"], frame["truncated"] = _cut(frame["text"], max_chars)
    return frame


def _table(path: Path, component: str) -> tuple[pd.DataFrame, int]:
    text, bad = decode(path.read_bytes())
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            frame = pd.read_json(io.StringIO(text), lines=suffix != ".json", dtype=False)
            frame = frame.astype(object).where(frame.notna(), "")
            frame = frame.map(lambda v: v if isinstance(v, str) else str(v))
        else:
            frame = pd.read_csv(io.StringIO(text), sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as err:
        first = (str(err).strip().splitlines() or ["unreadable"])[0][:200]
        raise DataError(received(component, "data", path, f"it cannot be read as {suffix[1:].upper()} ({first})",
                                 "Check the file's format")) from None
    return frame, bad


def find_column(frame: pd.DataFrame, name: str, key: str, path, component: str) -> str:
    if name in frame.columns:
        return name
    near = difflib.get_close_matches(str(name), [str(c) for c in frame.columns], n=3, cutoff=0.3)
    hint = f"Did you mean {' or '.join(near)}?" if near else f"Columns: {', '.join(map(str, frame.columns[:12]))}"
    raise DataError(received(component, key, name, f"{Path(path).name} has no such column", hint))


def read_table(path: Path, text: str | None, label: str | None, split_column: str, max_chars: int,
               component: str = "train", need_label: bool = True) -> pd.DataFrame:
    frame, bad = _table(path, component)
    if frame.empty:
        raise DataError(received(component, "data", path, "it holds no rows", "Pass a file with a header and rows"))
    text_col = find_column(frame, text or "text", "text.text", path, component)
    label_col = None
    if label is not None:
        label_col = find_column(frame, label, "text.label", path, component)
    elif need_label:
        label_col = next((c for c in LABEL_NAMES if c in frame.columns and c != text_col), None)
        if label_col is None:
            raise DataError(received(component, "text.label", "<unset>", f"{path.name} has no label / target / class column",
                                     f"Name it with target=COLUMN (columns: {', '.join(map(str, frame.columns[:12]))})"))
    texts = frame[text_col].astype(str)
    out = pd.DataFrame({"text": texts, "label": frame[label_col].astype(str).str.strip() if label_col else "",
                        "split": None, "where": [f"{path.name}:{i + 2}" for i in range(len(frame))],
                        "bad_bytes": texts.str.count(REPLACEMENT).to_numpy() if bad else 0})
    if split_column in frame.columns and split_column not in (text_col, label_col):
        s = frame[split_column].astype(str).str.strip().str.lower().map(SPLIT_NAMES)
        if s.isna().any():
            value = frame[split_column][s.isna()].iloc[0]
            raise DataError(received(component, "text.split_column", split_column, f"it holds {value!r}; a split column may hold "
                                     "only train, val and test", "Fix the column, or name another one with split_column="))
        out["split"] = s.to_numpy()
    out["text"], out["truncated"] = _cut(out["text"], max_chars)
    out.attrs["columns"] = {"text": text_col, "label": label_col}
    return out


def read_texts(path, text: str | None = None, label: str | None = None, split_column: str = "split",
               max_chars: int = 100_000, component: str = "train", need_label: bool = True) -> pd.DataFrame:
    """Every labelled text of `path`: columns text, label, split (None unless the source has one), where, bad_bytes, truncated."""
    if path is None:
        raise DataError(received(component, "data", "<unset>", "no data was given", "Example: data=reviews.csv text=review target=label"))
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(received(component, "data", path, "no such file or folder", "Check the path"))
    if p.is_dir():
        frame = read_folder(p, max_chars, component)
        frame.attrs["columns"] = {"text": None, "label": None}
        return frame
    if p.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(received(component, "data", path, "text data is a folder of class folders of .txt files or a "
                                 "CSV / TSV / JSON Lines file", "Pass one of those"))
    return read_table(p, text, label, split_column, max_chars, component, need_label)


def empty_mask(texts: pd.Series) -> np.ndarray:
    """Texts that are empty or whitespace only."""
    return texts.str.strip().str.len().to_numpy() == 0


def assign_splits(frame: pd.DataFrame, val: float, test: float, seed: int, component: str = "train") -> np.ndarray:
    """The source's own splits (val carved from train when it has none), else seeded and stratified."""
    from sklearn.model_selection import train_test_split

    n = len(frame)
    labels = frame["label"].to_numpy()
    counts = frame["label"].value_counts()
    stratify_ok = counts.min() >= 3

    def carve(idx: np.ndarray, fraction: float, offset: int) -> tuple[np.ndarray, np.ndarray]:
        if fraction <= 0 or len(idx) < 3:
            return idx, idx[:0]
        strat = labels[idx] if stratify_ok and pd.Series(labels[idx]).value_counts().min() >= 2 else None
        n_hold = max(1, int(round(len(idx) * fraction)))
        if strat is not None:
            n_hold = max(n_hold, len(set(strat)))
            if len(idx) - n_hold < len(set(strat)):
                strat = None
        return tuple(train_test_split(idx, test_size=n_hold, random_state=seed + offset, stratify=strat))

    given = frame["split"].to_numpy()
    if pd.notna(given).all():
        out = given.astype(object).copy()
        if not (out == "val").any() and val > 0:
            train = np.flatnonzero(out == "train")
            _, hold = carve(train, val / max(1e-9, 1 - (test if not (out == "test").any() else 0)), 1)
            out[hold] = "val"
        return out
    out = np.full(n, "train", dtype=object)
    rest, hold = carve(np.arange(n), test, 0)
    out[hold] = "test"
    _, hold = carve(rest, val / max(1e-9, 1 - test), 1)
    out[hold] = "val"
    return out


__all__ = ["assign_splits", "decode", "empty_mask", "find_column", "is_text_folder", "read_texts"]
