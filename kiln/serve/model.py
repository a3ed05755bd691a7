"""What the server serves: a run folder's Keras model or an export folder, behind one predictor.

    served = load_served("runs/train")          # run.json + model.keras (Keras safe mode)
    served = load_served("runs/train/exports/tflite-int8")   # export.json + model file
    served.predictor(inputs)                    # the task's signature inputs -> its first output

Both name their task (a file without "task" is an image run or export); the task's adapter turns
requests into predictor inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kiln.errors import KilnError, bad_file, received

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
    """A run folder (run.json + model.keras) or an export folder (export.json); a file that cannot be
    loaded is one FileError line here, before the server starts."""
    from kiln.export.export import FORMATS, MANIFEST, format_module
    from kiln.io import read_json, read_text
    from kiln.tasks.base import Signature, task_of

    path = Path(source)
    if (path / MANIFEST).exists():
        again = "Export the run again with kiln export"
        manifest = read_json(path / MANIFEST, "a Kiln export.json", required=("format", "file", "input", "output"), fix=again)
        fmt = manifest["format"]
        if fmt not in FORMATS:
            raise bad_file(path / MANIFEST, f"it names format={fmt}, which this Kiln does not serve (it serves {', '.join(FORMATS)})",
                           "Upgrade Kiln if a newer one exported it, or export again")
        task = task_of(manifest)
        try:
            spec, signature = task.load_spec(manifest), Signature.from_dict(manifest)
        except (KeyError, TypeError, ValueError, IndexError):
            raise bad_file(path / MANIFEST, f"it is not a Kiln export.json (its {task.info.name} spec or its input / output "
                           "is missing or incomplete)", again) from None
        labels = path / manifest.get("labels", "labels.txt")
        classes = read_text(labels, again).splitlines() if labels.exists() else manifest.get("classes")
        try:
            predictor = format_module(fmt).load(path, signature)
        except KilnError:
            raise
        except Exception as err:  # noqa: BLE001 - a damaged model file: name it, in one line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise bad_file(path / manifest["file"], f"the {fmt} runtime cannot load it ({type(err).__name__}: {first})", again) from None
        return ServedModel(name or manifest.get("run_name") or path.resolve().name, classes, spec, predictor, fmt,
                           manifest.get("quantize", "none"), manifest.get("threshold"), path, task, signature, manifest)
    if (path / "run.json").exists() and (path / "model.keras").exists():
        from kiln.export.keras import KerasPredictor
        from kiln.run import load_run

        run = load_run(path)
        model = run.model
        signature = run.task.signature(run)
        return ServedModel(name or run.name, run.classes, run.spec, KerasPredictor(model, signature), "keras", "none",
                           run.meta.get("threshold"), path, run.task, signature, run.meta)
    raise KilnError(received("serve", "path", source, "it is neither a run folder (run.json + model.keras) nor an export folder "
                             "(export.json)", "Pass a folder written by kiln train or kiln export"))


def task_at(source):
    """The task an export or run folder names (read from export.json / run.json, without loading the model); None when
    the folder is neither (load_served says why)."""
    from kiln.export.export import MANIFEST
    from kiln.io import read_json
    from kiln.tasks.base import task_of

    path = Path(source)
    for name in (MANIFEST, "run.json"):
        if (path / name).is_file():
            return task_of(read_json(path / name, f"a Kiln {name}", fix="Export or train again"))
    return None


def decide(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Predicted class index per row: argmax, or for a two-class run with a stored threshold, p1 >= threshold."""
    from kiln.evaluate.threshold import apply_threshold

    return apply_threshold(probs, threshold)
