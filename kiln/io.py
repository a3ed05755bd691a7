"""Atomic writes: a temp file in the same folder, then `os.replace`, so a crash leaves no half file.
`LatestWriter` runs such writes off the training thread.

Reading back goes through `read_json`, `read_yaml`, `read_csv` and `load_keras`: every file Kiln wrote
(run.json, config.yaml, splits.csv, history.csv, export.json, manifests, model.keras, ...) that is
missing, cut short, not what its name says, unsafe or from a newer Kiln becomes one `FileError` line
naming the file, never a traceback (kiln/errors.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path

from kiln.errors import bad_file

# Version of the JSON files Kiln writes (run.json, export.json, audit.json, manifests, the resume
# checkpoint's header); a reader refuses a newer one instead of misreading it.
FORMAT_VERSION = 1
REWRITE = "Restore it from a copy, or write it again with the kiln mode that made it"


def umask() -> int:
    """The process umask, read without changing it where Linux says it (/proc/self/status), so no other thread
    creates a file under a briefly cleared umask; elsewhere set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | Path, folder: bool = False) -> None:
    """Give a file made by mkstemp (0600) or a folder made by mkdtemp (0700) the mode a plain open() or mkdir() would
    have: 0666 (0777) less the umask, so a colleague or a web server can read what Kiln writes when the umask allows."""
    os.chmod(path, (0o777 if folder else 0o666) & ~umask())


@contextlib.contextmanager
def atomic_path(dest: str | Path):
    """Yield a temp path with the same suffix beside `dest`; rename it over `dest` on success, with the mode the
    umask gives a new file (mkstemp's own is 0600)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix="".join(dest.suffixes) or ".tmp", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.isfile(tmp):
            honour_umask(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read 1 MiB at a time (shards in manifest.json, model.keras in export.json)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text(dest: str | Path, text: str) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def write_json(dest: str | Path, obj) -> Path:
    return write_text(dest, json.dumps(obj, indent=2, default=_default) + "\n")


def write_csv(frame, dest: str | Path) -> Path:
    """`frame` as CSV at `dest`, atomically, as pandas' `to_csv(index=False)` writes it (a float that is a whole
    number may read `2` instead of `2.0`).

    Why not just pandas: for 100,000 rows x 33 columns its writer takes ~1.5 s idle (12 s on a loaded machine),
    most of a table `kiln predict`; pyarrow's takes ~0.07 s. pyarrow quotes every string it writes unless told
    to quote none, and then refuses values that need quotes (a delimiter, quote or newline inside): such a
    frame, or one pyarrow cannot convert (mixed objects), is written by pandas instead."""
    import csv

    with atomic_path(dest) as tmp:
        try:
            import pyarrow as pa
            import pyarrow.csv as pcsv

            if not all(k in "OUifT" for k in (frame.dtypes.map(lambda d: d.kind) if len(frame.columns) else [])):
                raise TypeError("booleans, dates and categories: pandas' spelling")  # pyarrow writes true / false
            table = pa.Table.from_pandas(frame, preserve_index=False)
            with open(tmp, "w", newline="") as f:  # the header as pandas writes it: quoted only where needed
                csv.writer(f, lineterminator="\n").writerow([str(c) for c in frame.columns])
            with open(tmp, "ab") as f:
                pcsv.write_csv(table, f, pcsv.WriteOptions(include_header=False, quoting_style="none"))
        except (ImportError, ValueError, TypeError, NotImplementedError):  # pyarrow's errors subclass these
            frame.to_csv(tmp, index=False)
    return Path(dest)


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


# ---------------------------------------------------------------------------------------------
# Reading back


def _check_file(path: Path, fix: str) -> int:
    """Size of `path`; a FileError when it is missing (only then) or empty."""
    if not path.exists():
        raise bad_file(path, "no such file", fix)
    if not path.is_file():
        raise bad_file(path, "it is a folder, not a file", fix)
    size = path.stat().st_size
    if size == 0:
        raise bad_file(path, "it is empty (cut short while it was written?)", fix)
    return size


def read_text(path: str | Path, fix: str = REWRITE) -> str:
    """A UTF-8 text file; missing, empty and binary are told apart."""
    path = Path(path)
    _check_file(path, fix)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise bad_file(path, "it is not text (binary data where text belongs)", fix) from None


def check_version(obj: dict, path: str | Path, newest: int = FORMAT_VERSION) -> None:
    """Refuse a file whose `format_version` is newer than this Kiln reads (files without one are version 1)."""
    from kiln import __version__

    version = obj.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad_file(path, f"its format_version {version!r} is not a whole number", REWRITE)
    if version > newest:
        by = f", Kiln {obj['kiln_version']}" if obj.get("kiln_version") else ""
        raise bad_file(path, f"it was written by a newer Kiln (format version {version}{by}); this Kiln {__version__} "
                       f"reads up to version {newest}", "Upgrade Kiln (pip install -U kiln-ml) to read it")


def read_json(path: str | Path, what: str = "a Kiln file", required: tuple[str, ...] = (), fix: str = REWRITE,
              newest: int = FORMAT_VERSION) -> dict:
    """A JSON object written by Kiln, checked: complete, an object, holding `required` keys, not newer."""
    text = read_text(path, fix)
    try:
        obj = json.loads(text)
    except ValueError as err:
        end = text.rstrip()  # Kiln writes whole objects, so a text that stops before its closing brace was cut short
        cut = not end.endswith("}") or getattr(err, "pos", 0) >= len(end)
        detail = f"{getattr(err, 'msg', err)} at line {getattr(err, 'lineno', '?')}"
        why = "it is cut short (the JSON ends early)" if cut else f"it is not valid JSON ({detail})"
        raise bad_file(path, why, fix) from None
    if not isinstance(obj, dict):
        raise bad_file(path, f"it is not {what} (a JSON object was expected)", fix)
    check_version(obj, path, newest)
    missing = [k for k in required if k not in obj]
    if missing:
        raise bad_file(path, f"it is not {what} (it has no {missing[0]!r})", fix)
    return obj


def read_yaml(path: str | Path, what: str = "a Kiln config", fix: str = REWRITE) -> dict:
    """A YAML mapping (config.yaml); an empty file is an error, not an empty config."""
    import yaml

    text = read_text(path, fix)
    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise bad_file(path, f"it is not valid YAML ({str(err).splitlines()[0]}; cut short?)", fix) from None
    if not isinstance(obj, dict):
        raise bad_file(path, f"it is not {what} (a mapping of keys was expected)", fix)
    return obj


def read_csv(path: str | Path, columns: tuple[str, ...] = (), what: str = "a Kiln table", fix: str = REWRITE,
             complete: bool = True, **kwargs):
    """A CSV Kiln wrote. Kiln's CSVs end with a newline, so one that does not was cut short (`complete=False`:
    a file still being appended to; its partial last line is dropped)."""
    import pandas as pd

    path = Path(path)
    _check_file(path, fix)
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        cut = f.read(1) not in (b"\n", b"\r")
    if cut and complete:
        raise bad_file(path, "it is cut short (its last line is incomplete)", fix)
    try:
        if cut:
            text = read_text(path, fix)
            frame = pd.read_csv(StringIO(text[: text.rfind("\n") + 1]), **kwargs)
        else:
            frame = pd.read_csv(path, **kwargs)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise bad_file(path, f"it is not {what} ({first})", fix) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise bad_file(path, f"it is not {what} (no {missing[0]!r} column)", fix)
    return frame


MODEL_FIX = "Train the run again, or restore model.keras from a copy"


def check_keras(path: str | Path, fix: str = MODEL_FIX) -> str | None:
    """The cheap checks of a `.keras` file, without starting TensorFlow: a whole zip holding config.json.
    Returns the Keras version that saved it (None when unknown)."""
    import zipfile

    path = Path(path)
    _check_file(path, fix)
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            zip_start = f.read(4) == b"PK\x03\x04"
        why = "it is cut short (a zip archive without its end)" if zip_start else "it is not a .keras model (not a zip archive)"
        raise bad_file(path, why, fix)
    saved_by = None
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "metadata.json" in names:
                saved_by = json.loads(zf.read("metadata.json")).get("keras_version")
    except Exception as err:  # noqa: BLE001 - any damage inside the archive is the file's problem
        raise bad_file(path, f"it is damaged ({type(err).__name__}: {_first_line(err)})", fix) from None
    if "config.json" not in names:
        raise bad_file(path, "it is not a .keras model (a zip archive without config.json)", fix)
    return saved_by


def load_keras(path: str | Path, fix: str = MODEL_FIX, compile: bool = False):
    """A `.keras` file in Keras safe mode (no Lambda layers, nothing unpickled), or one FileError line saying why not."""
    path = Path(path)
    saved_by = check_keras(path, fix)
    import keras  # after the checks above: a damaged file is refused without starting TensorFlow

    import kiln.train.ensemble  # noqa: F401  registers kiln>Ensemble, which any task's model.keras may be
    from kiln.tasks.base import register_layers

    register_layers()  # every task's custom layers

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    except Exception as err:  # noqa: BLE001
        text = str(err)
        if "safe_mode" in text or "Lambda" in text:
            raise bad_file(path, "it holds a Lambda layer or other arbitrary Python code, which Keras safe mode refuses to load "
                           "(nothing ran)", "Rebuild the model from registered Keras layers (no Lambda) and save it again") from None
        if saved_by and _newer(saved_by, keras.__version__):
            raise bad_file(path, f"it was saved by Keras {saved_by}, newer than this Keras {keras.__version__}, which cannot load it "
                           f"({type(err).__name__}: {_first_line(err)})", f"Upgrade Keras to {saved_by} or later") from None
        raise bad_file(path, f"Keras cannot load it ({type(err).__name__}: {_first_line(err)})", fix) from None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _newer(version: str, than: str) -> bool:
    def parts(v):
        return tuple(int(p) if p.isdigit() else 0 for p in v.split(".")[:3])

    try:
        return parts(version) > parts(than)
    except ValueError:
        return False
