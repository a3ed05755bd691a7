"""What the server serves: a run folder's Keras model or an export folder, behind one predictor.

    served = load_served("runs/train")          # run.json + model.keras (Keras safe mode)
    served = load_served("runs/train/exports/tflite-int8")   # export.json + model file
    served.predictor(inputs)                    # the task's signature inputs -> its first output

Both name their task (a file without "task" is an image run or export); the task's adapter turns
requests into predictor inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kiln.errors import KilnError, received

PLATFORMS = {"keras": "keras", "savedmodel": "tensorflow_savedmodel", "tflite": "tflite", "onnx": "onnxruntime_onnx"}


@dataclass
class ServedModel:
    name: str
    classes: list[str] | None
    spec: object  # the task's spec (kiln/tasks/<task>), as run.json / export.json hold it
    predictor: object  # callable: the signature's inputs -> its first output
    format: str
    quantize: str
    threshold: float | None
    source: Path
    task: object = None  # the kiln.tasks.base.Task the model was trained for
    signature: object = None  # kiln.tasks.base.Signature
    meta: dict = field(default_factory=dict)  # run.json or export.json

    @property
    def platform(self) -> str:
        return PLATFORMS[self.format]


def load_served(source: str | Path, name: str | None = None) -> ServedModel:
    """A run folder (run.json + model.keras) or an export folder (export.json)."""
    from kiln.export.export import MANIFEST, format_module
    from kiln.tasks.base import Signature, task_of

    path = Path(source)
    if (path / MANIFEST).is_file():
        manifest = json.loads((path / MANIFEST).read_text())
        task = task_of(manifest)
        signature = Signature.from_dict(manifest)
        labels = path / manifest.get("labels", "labels.txt")
        classes = labels.read_text().splitlines() if labels.is_file() else manifest.get("classes")
        fmt = manifest["format"]
        predictor = format_module(fmt).load(path, signature)
        return ServedModel(name or manifest.get("run_name") or path.resolve().name, classes, task.load_spec(manifest),
                           predictor, fmt, manifest.get("quantize", "none"), manifest.get("threshold"), path,
                           task, signature, manifest)
    if (path / "run.json").is_file() and (path / "model.keras").is_file():
        from kiln.export.keras import KerasPredictor, load_keras
        from kiln.run import Run

        run = Run(path)
        model = load_keras(path / "model.keras")
        signature = run.task.signature(run)
        return ServedModel(name or run.name, run.classes, run.spec, KerasPredictor(model, signature), "keras", "none",
                           run.meta.get("threshold"), path, run.task, signature, run.meta)
    raise KilnError(received("serve", "path", source, "it is neither a run folder (run.json + model.keras) nor an export folder "
                             "(export.json)", "Pass a folder written by kiln train or kiln export"))


def decide(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Predicted class index per row: argmax, or for a two-class run with a stored threshold, p1 >= threshold."""
    from kiln.evaluate.threshold import apply_threshold

    return apply_threshold(probs, threshold)
