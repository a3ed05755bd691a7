"""`kiln audit DATA fix=quarantine` and `kiln audit restore MANIFEST`: move problem files aside, and back.

Files are moved (never deleted, never rewritten) into a new folder beside DATA, `DATA.quarantine`
(`-2`, `-3`, ... when taken), keeping their paths relative to DATA. `manifest.json` in that folder
lists every move; `restore` moves them back and refuses to overwrite a file that is there again.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
from pathlib import Path

from kiln.errors import DataError, KilnError, received
from kiln.io import FORMAT_VERSION, read_json, write_json, write_text

log = logging.getLogger("kiln.audit")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _base(source: Path) -> Path:
    """The folder quarantined paths are relative to: DATA itself, or a CSV's folder."""
    return source.parent if source.is_file() else source


def _free_folder(source: Path) -> Path:
    stem = source.with_suffix("") if source.is_file() else source
    for i in range(1, 10000):
        dest = Path(f"{stem}.quarantine" if i == 1 else f"{stem}.quarantine-{i}")
        if not dest.exists():
            return dest
    raise KilnError(received("audit", "fix", "quarantine", f"too many quarantine folders beside {source}", "Restore or move some of them"))


def _relative(path: Path, base: Path) -> Path:
    try:
        return path.relative_to(base)
    except ValueError:  # a CSV may list files outside its folder
        return Path("_outside") / path.relative_to(path.anchor)


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        raise KilnError(received("audit", "path", dst, "a file is already there", "Move it away first; Kiln never overwrites"))
    try:
        os.rename(src, dst)
    except OSError:  # another file system: copy, then remove the original (still a move)
        shutil.move(str(src), str(dst))


def quarantine(report: dict, paths: list[str] | None = None) -> Path:
    """Move `paths` (default: `report["quarantine"]`) beside the audited source; return the manifest path."""
    source = Path(report["source"])
    paths = report["quarantine"] if paths is None else paths
    if not paths:
        raise DataError(received("audit", "fix", "quarantine", "the audit found no file to move", "Nothing to do"))
    base = _base(source)
    dest = _free_folder(source)
    dest.mkdir(parents=True)
    problems: dict[str, list[str]] = {}
    for p in report["problems"]:
        problems.setdefault(p["path"], []).append(p["kind"])
    moved: list[dict] = []
    manifest = {"format_version": FORMAT_VERSION, "kiln_version": report.get("kiln_version"), "source": str(source), "folder": str(dest.resolve()),
                "created": _now(), "restored": None, "files": moved}
    try:
        for path in paths:
            src = Path(path)
            if not src.is_file():
                log.warning("audit: %s is gone; not moved", src)
                continue
            dst = dest / _relative(src.resolve(), base.resolve())
            _move(src, dst)
            moved.append({"from": str(src), "to": str(dst.resolve()), "kinds": sorted(set(problems.get(path, [])))})
    finally:  # even when a move fails halfway, the manifest lists every file that did move
        write_json(dest / "manifest.json", manifest)
    if source.is_file():
        _write_kept_csv(source, {m["from"] for m in moved}, dest / "kept.csv")
    return dest / "manifest.json"


def _write_kept_csv(csv: Path, moved: set[str], dest: Path) -> None:
    """A CSV source still lists the moved files; write a copy without them, with absolute paths (the original is not touched)."""
    import pandas as pd

    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    column = next(c for c in frame.columns if c.strip().lower() == "path")
    paths = [str((csv.parent / p.strip()).resolve()) if not Path(p.strip()).is_absolute() else p.strip() for p in frame[column]]
    frame[column] = paths
    write_text(dest, frame[[p not in moved for p in paths]].to_csv(index=False))
    log.warning("audit: %s still lists the moved files; train on %s instead (Kiln never edits your CSV)", csv, dest)


def restore(manifest_path: str | Path) -> int:
    """Move every quarantined file back; refuse (moving nothing) if any original path is taken again."""
    manifest_path = Path(manifest_path)
    if manifest_path.is_dir():
        manifest_path = manifest_path / "manifest.json"
    if not manifest_path.is_file():
        raise KilnError(received("audit restore", "MANIFEST", manifest_path, "no such file",
                                 "Pass the manifest.json of a quarantine folder, e.g. DATA.quarantine/manifest.json"))
    manifest = read_json(manifest_path, "a Kiln quarantine manifest", required=("files",),
                         fix="Pass the manifest.json written by kiln audit fix=quarantine")
    files = manifest["files"]
    if not isinstance(files, list) or not all(isinstance(f, dict) and "from" in f and "to" in f for f in files):
        raise KilnError(received("audit restore", "MANIFEST", manifest_path, "it is not a Kiln quarantine manifest",
                                 "Pass the manifest.json written by kiln audit fix=quarantine"))
    pending = [f for f in files if not f.get("restored")]
    missing = [f for f in pending if not Path(f["to"]).is_file()]
    if missing:
        raise KilnError(received("audit restore", "MANIFEST", manifest_path, f"{len(missing)} quarantined file(s) are gone (first: {missing[0]['to']})",
                                 "Put them back in the quarantine folder, or restore the others by hand"))
    taken = [f for f in pending if Path(f["from"]).exists()]
    if taken:
        raise KilnError(received("audit restore", "MANIFEST", manifest_path,
                                 f"{len(taken)} original path(s) hold a file again (first: {taken[0]['from']}), which Kiln never overwrites",
                                 "Move those files away and run restore again; nothing was moved"))
    try:
        for entry in pending:
            _move(Path(entry["to"]), Path(entry["from"]))
            entry["restored"] = True
    finally:
        manifest["restored"] = _now() if all(f.get("restored") for f in files) else None
        write_json(manifest_path, manifest)
    return len(pending)
