"""Which runtime `kiln predict` runs a model in: Keras, or the run's own verified ONNX export. Every task uses
this one place; it knows no task.

Why: on a 2-core machine `kiln predict RUN one.png` spent ~12 CPU-seconds, nearly all of it starting
TensorFlow, to answer one image; onnxruntime starts in ~0.3 s and never imports TensorFlow. The export *is*
the model: `kiln export` kept it only after its own parity check on the run's test examples (export.json
"passed"), and its `model_sha256` ties it to the model.keras it was made from, so a run whose model.keras
changed since (or an export written before that field) falls back to Keras. `kiln train` writes that export
at the end (train.export_on_finish=onnx, the default).

    runtime=auto   the newest passed float ONNX export under RUN/exports/ of this model.keras, else Keras
    runtime=keras  always Keras (imports TensorFlow)
    runtime=onnx   that export, or one line saying how to make it

A task's predict asks `export_model(run, runtime)`: None means "use run.model"; otherwise an `ExportModel`
that answers the file's inputs (what the task's `export_model(run, "onnx")` signature names, e.g. token ids
for text, with the task's own host step before it) with the Keras model's first output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kiln.errors import ConfigError, received
from kiln.io import sha256_file

RUNTIMES = ("auto", "keras", "onnx")
CHUNK = 4096  # rows per onnxruntime call: bounded memory on a large file


def onnx_export(run) -> Path | None:
    """The folder of the newest float ONNX export of this run's current model.keras that passed parity, or None."""
    found = []
    for manifest in (run.path / "exports").glob("*/export.json"):
        try:
            m = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue  # a damaged export is not this command's to report: Keras runs instead
        if (m.get("format") == "onnx" and m.get("quantize") == "none" and m.get("passed") and not m.get("forced")
                and (manifest.parent / m.get("file", "model.onnx")).is_file() and m.get("model_sha256")):
            found.append((m.get("created", ""), manifest.parent, m["model_sha256"]))
    if not found:
        return None
    current = sha256_file(run.path / "model.keras")
    for _, folder, sha in sorted(found, key=lambda t: t[0], reverse=True):
        if sha == current:
            return folder
    return None


def export_folder(run, runtime: str = "auto") -> Path | None:
    """The ONNX export folder `runtime` asks for (None: Keras); runtime=onnx without one is one line saying how to make it."""
    if runtime not in RUNTIMES:
        raise ConfigError(received("predict", "runtime", runtime, "it is not a runtime Kiln predicts with",
                                   f"Use one of {', '.join(RUNTIMES)}"))
    folder = None if runtime == "keras" else onnx_export(run)
    if folder is None and runtime == "onnx":
        raise ConfigError(received("predict", "runtime", "onnx", f"{run.path / 'exports'} holds no float ONNX export of this "
                                   "model.keras that passed its parity check", f"Run kiln export {run.path} format=onnx first, "
                                   "or use runtime=keras"))
    return folder


class ExportModel:
    """A verified ONNX export standing in for the Keras model: `model(x)` / `model.predict_on_batch(x)` on NumPy
    inputs (an array for a one-input model, else a dict by input name) -> the first output (what the Keras model
    returns), `CHUNK` rows at a time."""

    runtime = "onnxruntime"

    def __init__(self, folder: Path):
        import onnxruntime as ort

        self.folder = Path(folder)
        manifest = json.loads((self.folder / "export.json").read_text())
        self.manifest = manifest
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.folder / manifest.get("file", "model.onnx")), options,
                                             providers=["CPUExecutionProvider"])
        self._inputs = {i.name: _numpy_type(i.type) for i in self._session.get_inputs()}
        names = [o.name for o in self._session.get_outputs()]
        wanted = (manifest.get("output") or {}).get("name")
        self._out = wanted if wanted in names else names[0]

    @property
    def description(self) -> str:
        return f"onnxruntime, {self.folder.parent.name}/{self.folder.name}"

    def __call__(self, x) -> np.ndarray:
        feed = x if isinstance(x, dict) else {next(iter(self._inputs)): x}
        n = len(next(iter(feed.values())))
        parts = []
        for i in range(0, max(n, 1), CHUNK):
            chunk = {k: np.ascontiguousarray(np.asarray(v)[i:i + CHUNK], dtype=self._inputs[k]) for k, v in feed.items()}
            parts.append(np.asarray(self._session.run([self._out], chunk)[0], dtype=np.float32))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    predict_on_batch = __call__

    def predict(self, x, verbose=0, **_) -> np.ndarray:
        return self(x)


def _numpy_type(onnx_type: str):
    """'tensor(float)' -> np.float32; strings as Python objects."""
    name = onnx_type[len("tensor("):-1] if onnx_type.startswith("tensor(") else onnx_type
    special = {"float": np.float32, "double": np.float64, "string": object, "bool": np.bool_}
    return special[name] if name in special else np.dtype(name).type


def export_model(run, runtime: str = "auto") -> ExportModel | None:
    """The run's verified ONNX export loaded for `runtime` (None: use run.model, Keras)."""
    folder = export_folder(run, runtime)
    return None if folder is None else ExportModel(folder)


def where(run, model) -> str:
    """'keras' or 'onnxruntime, exports/onnx': what `kiln predict` prints it ran in."""
    return model.description if isinstance(model, ExportModel) else "keras"


def announce(run, model, n: int, what: str) -> None:
    """One stderr line saying which runtime answered (stdout stays the predictions)."""
    import sys

    print(f"kiln: predicted {n} {what} ({where(run, model)})", file=sys.stderr, flush=True)


__all__ = ["CHUNK", "ExportModel", "RUNTIMES", "export_folder", "export_model", "announce", "onnx_export", "where"]
