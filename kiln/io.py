"""Atomic writes: a temp file in the same folder, then `os.replace`, so a crash leaves no half file.
`LatestWriter` runs such writes off the training thread."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
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


class LatestWriter:
    """Runs write jobs in order on one background thread; a job still waiting when a newer one arrives
    is dropped, since each job rewrites a whole file and only the newest matters.

    Checkpoints are written while training goes on: the training thread pays only for copying the
    arrays it hands over. A failed write raises on the next `submit` or at `close`. Jobs already handed
    over finish even if the caller dies of an exception (the interpreter joins the thread at exit).
    """

    def __init__(self, name: str):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._waiting = None  # the newest job not yet started
        self._futures: list = []

    def submit(self, job) -> None:
        self._reap()
        with self._lock:
            replaced = self._waiting is not None
            self._waiting = job
        if not replaced:  # a queued run is already there to pick up the newest job
            self._futures.append(self._pool.submit(self._run))

    def _run(self) -> None:
        with self._lock:
            job, self._waiting = self._waiting, None
        if job is not None:
            job()

    def _reap(self) -> None:
        done = [f for f in self._futures if f.done()]
        for f in done:
            self._futures.remove(f)
            f.result()

    def flush(self) -> None:
        """Wait until every job handed over so far is written; re-raise the first failure."""
        futures, self._futures = self._futures, []
        for f in futures:
            f.result()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True)
