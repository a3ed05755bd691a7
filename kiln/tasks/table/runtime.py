"""Which runtime `kiln predict` runs a table model in: Keras, or the run's own verified ONNX export.

Why: on a 2-core machine a `kiln predict` of 100,000 rows spent three quarters of its 10 s importing
TensorFlow and Keras (~6 s) and tracing the model; onnxruntime starts in ~0.3 s and never imports
TensorFlow. The export *is* the model: `kiln export` kept it only after its own parity check on the
run's test rows (export.json "passed"), and its `model_sha256` ties it to the model.keras it was made
from, so a run whose model.keras changed since (or an export written before that field) falls back to Keras.

    runtime=auto   the newest passed float ONNX export under RUN/exports/ of this model.keras, else Keras
    runtime=keras  always Keras (imports TensorFlow)
    runtime=onnx   that export, or one line saying how to make it
"""

from __future__ import annotations

import json
from pathlib import Path

from kiln.errors import ConfigError, received
from kiln.io import sha256_file

RUNTIMES = ("auto", "keras", "onnx")


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


def predictor(task, run, runtime: str = "auto"):
    """(predict(inputs dict) -> (N, K) array, description) for the runtime chosen."""
    if runtime not in RUNTIMES:
        raise ConfigError(received("predict", "runtime", runtime, "it is not a runtime Kiln predicts tables with",
                                   f"Use one of {', '.join(RUNTIMES)}"))
    folder = None if runtime == "keras" else onnx_export(run)
    if folder is None and runtime == "onnx":
        raise ConfigError(received("predict", "runtime", "onnx", f"{run.path / 'exports'} holds no float ONNX export of this "
                                   "model.keras that passed its parity check", f"Run kiln export {run.path} format=onnx first, "
                                   "or use runtime=keras"))
    if folder is None:
        from kiln.tasks.table.spec import predict_inputs

        return (lambda x: predict_inputs(run.model, x)), "keras"
    from kiln.export.onnx import FILE, OnnxPredictor
    from kiln.tasks.table.predict import PREDICT_BATCH

    model = OnnxPredictor(folder / FILE, task.signature(run))

    def predict(x: dict):
        import numpy as np

        n = len(next(iter(x.values())))
        if n == 0:
            return model(x)
        return np.concatenate([model({k: v[i:i + PREDICT_BATCH] for k, v in x.items()}) for i in range(0, n, PREDICT_BATCH)])

    return predict, f"onnxruntime, {folder.relative_to(run.path)}"


__all__ = ["RUNTIMES", "onnx_export", "predictor"]
