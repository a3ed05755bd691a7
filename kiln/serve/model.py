"""What the server serves: a run folder's Keras model or an export folder, behind one predictor.

    served = load_served("runs/train")          # run.json + model.keras (Keras safe mode)
    served = load_served("runs/train/exports/tflite-int8")   # export.json + model file
    served.predictor(images)                    # (N, H, W, C) uint8 -> (N, K) float32
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiln.errors import KilnError, received

PLATFORMS = {"keras": "keras", "savedmodel": "tensorflow_savedmodel", "tflite": "tflite", "onnx": "onnxruntime_onnx"}


@dataclass
class ServedModel:
    name: str
    classes: list[str]
    spec: object  # kiln.tasks.image.data.prepare.ImageSpec
    predictor: object  # callable (N, H, W, C) uint8 -> (N, K) float32
    format: str
    quantize: str
    threshold: float | None
    source: Path

    @property
    def platform(self) -> str:
        return PLATFORMS[self.format]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.spec.shape


def load_served(source: str | Path, name: str | None = None) -> ServedModel:
    """A run folder (run.json + model.keras) or an export folder (export.json)."""
    from kiln.tasks.image.data.prepare import ImageSpec
    from kiln.export.export import MANIFEST, format_module

    path = Path(source)
    if (path / MANIFEST).is_file():
        manifest = json.loads((path / MANIFEST).read_text())
        spec = ImageSpec.from_dict(manifest["image"])
        labels = path / manifest.get("labels", "labels.txt")
        classes = labels.read_text().splitlines() if labels.is_file() else list(manifest["classes"])
        fmt = manifest["format"]
        predictor = format_module(fmt).load(path, spec.shape)
        return ServedModel(name or manifest.get("run_name") or path.resolve().name, classes, spec, predictor, fmt,
                           manifest.get("quantize", "none"), manifest.get("threshold"), path)
    if (path / "run.json").is_file() and (path / "model.keras").is_file():
        from kiln.export.keras import KerasPredictor, load_keras
        from kiln.run import Run

        run = Run(path)
        model = load_keras(path / "model.keras")
        spec = run.spec
        return ServedModel(name or run.name, list(run.classes), spec, KerasPredictor(model, spec.shape), "keras", "none",
                           run.meta.get("threshold"), path)
    raise KilnError(received("serve", "path", source, "it is neither a run folder (run.json + model.keras) nor an export folder "
                             "(export.json)", "Pass a folder written by kiln train or kiln export"))


def decide(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Predicted class index per row: argmax, or for a two-class run with a stored threshold, p1 >= threshold."""
    from kiln.evaluate.threshold import apply_threshold

    return apply_threshold(probs, threshold)
