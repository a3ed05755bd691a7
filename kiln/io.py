"""Atomic writes: a temp file in the same folder, then `os.replace`, so a crash leaves no half file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | Path):
    """Yield a temp path with the same suffix beside `dest`; rename it over `dest` on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix="".join(dest.suffixes) or ".tmp", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(dest: str | Path, text: str) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def write_json(dest: str | Path, obj) -> Path:
    return write_text(dest, json.dumps(obj, indent=2, default=_default) + "\n")


def _default(obj):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_model(model, dest: str | Path) -> Path:
    """`model.save` through a temp `.keras` file."""
    with atomic_path(dest) as tmp:
        model.save(tmp)
    return Path(dest)
