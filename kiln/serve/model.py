"""What the server serves: a run folder's Keras model or an export folder, behind one predictor.

    served = load_served("runs/train")          # run.json + model.keras (Keras safe mode)
    served = load_served("runs/train/exports/tflite-int8")   # export.json + model file
    served.predictor(images)                    # (N, H, W, C) uint8 -> (N, K) float32
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiln.errors import KilnError, bad_file, received

PLATFORMS = {"keras": "keras", "savedmodel": "tensorflow_savedmodel", "tflite": "tflite", "onnx": "onnxruntime_onnx"}


@dataclass
class ServedModel:
    name: str
    classes: list[str]
    spec: object  # kiln.data.prepare.ImageSpec
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
    """A run folder (run.json + model.keras) or an export folder (export.json); a file that cannot be
    loaded is one FileError line here, before the server starts."""
    from kiln.data.prepare import ImageSpec
    from kiln.export.export import FORMATS, MANIFEST, format_module
    from kiln.io import read_json, read_text

    path = Path(source)
    if (path / MANIFEST).exists():
        again = "Export the run again with kiln export"
        manifest = read_json(path / MANIFEST, "a Kiln export.json", required=("format", "image", "classes", "file"), fix=again)
        fmt = manifest["format"]
        if fmt not in FORMATS:
            raise bad_file(path / MANIFEST, f"it names format={fmt}, which this Kiln does not serve (it serves {', '.join(FORMATS)})",
                           "Upgrade Kiln if a newer one exported it, or export again")
        try:
            spec = ImageSpec.from_dict(manifest["image"])
        except (KeyError, TypeError, ValueError):
            raise bad_file(path / MANIFEST, "it is not a Kiln export.json (its image spec lacks height / width / channels)", again) from None
        labels = path / manifest.get("labels", "labels.txt")
        classes = read_text(labels, again).splitlines() if labels.exists() else list(manifest["classes"])
        try:
            predictor = format_module(fmt).load(path, spec.shape)
        except KilnError:
            raise
        except Exception as err:  # noqa: BLE001 - a damaged model file: name it, in one line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise bad_file(path / manifest["file"], f"the {fmt} runtime cannot load it ({type(err).__name__}: {first})", again) from None
        return ServedModel(name or manifest.get("run_name") or path.resolve().name, classes, spec, predictor, fmt,
                           manifest.get("quantize", "none"), manifest.get("threshold"), path)
    if (path / "run.json").exists() and (path / "model.keras").exists():
        from kiln.export.keras import KerasPredictor
        from kiln.run import load_run

        run = load_run(path)
        model = run.model
        spec = run.spec
        return ServedModel(name or run.name, list(run.classes), spec, KerasPredictor(model, spec.shape), "keras", "none",
                           run.meta.get("threshold"), path)
    raise KilnError(received("serve", "path", source, "it is neither a run folder (run.json + model.keras) nor an export folder "
                             "(export.json)", "Pass a folder written by kiln train or kiln export"))


def decide(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Predicted class index per row: argmax, or for a two-class run with a stored threshold, p1 >= threshold."""
    from kiln.evaluate.threshold import apply_threshold

    return apply_threshold(probs, threshold)
