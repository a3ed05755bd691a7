"""Sources: where labelled images come from, turned into one table of (path, label, split).

Accepted: a folder per class (`DATA/<class>/<image>`), a pre-split folder
(`DATA/{train,val,test}/<class>/...`), or a CSV with `path,label[,split]` columns (paths relative
to the CSV). `split` is empty when the source does not say; `split.py` fills it in.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from kiln.errors import DataError, received

log = logging.getLogger("kiln.data")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_class_folders(root: Path, split: str | None) -> tuple[list[tuple], int]:
    rows, skipped = [], 0
    for folder in _class_folders(root):
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            if _is_image(path):
                rows.append((str(path.resolve()), folder.name, split))  # tuples: a third of a dict's memory at 100k files
            else:
                skipped += 1
    return rows, skipped


def source_kind(path: Path) -> str:
    """'csv', 'shards', 'presplit' or 'folders'."""
    if path.is_file():
        return "csv"
    if (path / "manifest.json").is_file() and any(path.glob("*.tfrecord*")):
        return "shards"
    names = {p.name.lower() for p in _class_folders(path)}
    if names and names <= set(SPLIT_NAMES) and "train" in names:
        return "presplit"
    return "folders"


def discover(data: str | Path | None, component: str = "data", target: str | None = None) -> pd.DataFrame:
    """Read a source into a DataFrame with columns path (absolute), label (str), split (str or None).

    `target` (a CSV column of numbers): image regression; the frame then has `value` (float) beside `label` (the
    number as written), and `frame.attrs["target"]` names the column. A CSV whose label column holds decimal
    numbers regresses on it too (kiln/tasks/image/regress.py)."""
    if data is None or str(data) == "":
        raise DataError(received(component, "data", "<unset>", "no data path was given",
                                 "Pass data=path/to/images (a folder per class, a pre-split folder or a CSV)"))
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(received(component, "data", data, "no such file or folder", "Check the path"))
    kind = source_kind(path)
    if target is not None and kind != "csv":
        raise DataError(received(component, "target", target, f"a numeric target is read from a CSV column, and {data} is a "
                                 f"{'TFRecord shard folder' if kind == 'shards' else 'folder'}",
                                 "Pass data=FILE.csv with columns path,<target>[,split]"))
    if kind == "csv":
        frame = _read_csv(path, component, target)
    elif kind == "shards":
        raise DataError(received(component, "data", data, "this is a TFRecord shard folder",
                                 "Train on it with kiln train data=DIR; kiln audit and predict need image files"))
    else:
        if kind == "presplit":
            rows, skipped = [], 0
            for folder in _class_folders(path):
                r, s = _scan_class_folders(folder, SPLIT_NAMES[folder.name.lower()])
                rows += r
                skipped += s
        else:
            rows, skipped = _scan_class_folders(path, None)
        if skipped:
            log.warning("data: skipped %d file(s) in %s whose extension is not an image (%s)",
                        skipped, path, ", ".join(sorted(IMAGE_SUFFIXES)))
        frame = pd.DataFrame(rows, columns=["path", "label", "split"])
    if frame.empty:
        raise DataError(received(component, "data", data, "no images were found",
                                 "Put images in one sub-folder per class: DATA/<class>/<image>.jpg"))
    frame.attrs["kind"] = kind
    frame.attrs["root"] = str(path.resolve())
    if "value" in frame:
        return frame
    classes = frame["label"].unique()
    if len(classes) < 2:
        raise DataError(received(component, "data", data, f"only one class ({classes[0]}) was found",
                                 "A classifier needs at least two classes: one sub-folder per class"))
    frame.attrs["kind"] = kind
    frame.attrs["root"] = str(path.resolve())
    return frame


def _read_csv(path: Path, component: str, target: str | None = None) -> pd.DataFrame:
    from kiln.tasks.image import regress

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:  # pandas raises many parser types
        raise DataError(received(component, "data", path, f"the CSV cannot be read ({err})", "Write a CSV with a header: path,label[,split]")) from None
    frame.columns = [c.strip().lower() for c in frame.columns]
    values, target = regress.read_target(frame, target, path, component)  # None: classes
    if values is not None:
        frame["label"] = frame[target].str.strip()
    missing = [c for c in ("path", "label") if c not in frame.columns]
    if missing:
        raise DataError(received(component, "data", path, f"the CSV has no {' or '.join(missing)} column (found {', '.join(frame.columns)})",
                                 "Write a header line: path,label[,split]"))
    if "split" not in frame.columns:
        frame["split"] = None
    frame = frame[["path", "label", "split"]].copy()
    if values is not None:
        frame["value"] = values
        frame.attrs["target"] = target
    empty = frame["label"].str.strip() == ""
    if empty.any():
        rows = ", ".join(str(i + 2) for i in frame.index[empty][:5])
        raise DataError(received(component, "data", path, f"{int(empty.sum())} row(s) have an empty label (CSV lines {rows})",
                                 "Give every row a label or remove those rows"))
    frame["label"] = frame["label"].str.strip()
    base = path.parent
    frame["path"] = [str((base / p).resolve()) if not Path(p).is_absolute() else p for p in frame["path"]]
    exists = frame["path"].map(lambda p: Path(p).is_file())
    if not exists.all():
        first = frame.loc[~exists, "path"].iloc[0]
        raise DataError(received(component, "data", path, f"{int((~exists).sum())} listed file(s) do not exist (first: {first})",
                                 "Paths are relative to the CSV's folder; fix or remove those rows"))
    split = frame["split"].fillna("").str.strip().str.lower()
    bad = ~split.isin(list(SPLIT_NAMES) + [""])
    if bad.any():
        raise DataError(received(component, "data", path, f"split column has {split[bad].iloc[0]!r}",
                                 "Use train, val or test (or leave it empty)"))
    frame["split"] = [SPLIT_NAMES.get(s) if s else None for s in split]
    if frame["split"].notna().any() and frame["split"].isna().any():
        raise DataError(received(component, "data", path, "some rows have a split and some do not",
                                 "Fill the split column for every row, or leave it out"))
    return frame
