"""TensorFlow SavedModel export: a `serving_default` signature with the task signature's named inputs and
outputs, the layout TF Serving and `tf.saved_model.load` expect."""

from __future__ import annotations

from pathlib import Path

import numpy as np

QUANTIZE = ("none",)
FILE = "saved_model"
NOTES = {"none": "float32 weights; serving_default signature: the task's named inputs -> named float32 outputs"}


def write(model, signature, out_dir: Path, quantize: str = "none", calibration=None) -> Path:
    """Write `out_dir/saved_model` through keras.export.ExportArchive with the signature's typed inputs."""
    import keras

    from kiln.export import traced

    dest = Path(out_dir) / FILE
    archive = keras.export.ExportArchive()
    archive.track(model)
    serve, _ = traced(model, signature)
    archive.add_endpoint("serving_default", serve)
    archive.write_out(str(dest), verbose=False)
    return dest


class SavedModelPredictor:
    """Runs the `serving_default` signature with TensorFlow."""

    runtime = "tensorflow"

    def __init__(self, path: str | Path, signature):
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(str(path))  # a graph + variables; nothing is unpickled
        self._fn = self._loaded.signatures["serving_default"]
        self._inputs = {t.name: tf.as_dtype(t.dtype) for t in signature.inputs}
        self._out = signature.outputs[0].name
        self.output_names = [t.name for t in signature.outputs]

    def outputs(self, x) -> dict[str, np.ndarray]:
        """Every named output of the signature for `x` (float32)."""
        from kiln.export import as_inputs

        feed = {k: self._tf.constant(v, self._inputs[k]) for k, v in as_inputs(list(self._inputs), x).items()}
        out = self._fn(**feed)
        return {name: np.asarray(out[name], dtype=np.float32) for name in self.output_names}

    def __call__(self, x) -> np.ndarray:
        from kiln.export import as_inputs

        feed = {k: self._tf.constant(v, self._inputs[k]) for k, v in as_inputs(list(self._inputs), x).items()}
        return np.asarray(self._fn(**feed)[self._out], dtype=np.float32)


def load(out_dir: str | Path, signature) -> SavedModelPredictor:
    return SavedModelPredictor(Path(out_dir) / FILE, signature)
