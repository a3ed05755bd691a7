"""TensorFlow SavedModel export: a `serving_default` signature `image: uint8 (N, H, W, C)` ->
`probabilities: float32 (N, K)`, the layout TF Serving and `tf.saved_model.load` expect."""

from __future__ import annotations

from pathlib import Path

import numpy as np

QUANTIZE = ("none",)
FILE = "saved_model"
NOTES = {"none": "float32 weights; serving_default signature image uint8 (N,H,W,C) -> probabilities float32 (N,K)"}


def write(model, shape, out_dir: Path, quantize: str = "none", calibration=None) -> Path:
    """Write `out_dir/saved_model` through keras.export.ExportArchive with a uint8 signature."""
    import keras
    import tensorflow as tf

    dest = Path(out_dir) / FILE
    archive = keras.export.ExportArchive()
    archive.track(model)
    dtype = model.inputs[0].dtype

    @tf.function(input_signature=[tf.TensorSpec((None, *shape), tf.uint8, name="image")])
    def serve(image):
        return {"probabilities": model(tf.cast(image, dtype), training=False)}

    archive.add_endpoint("serving_default", serve)
    archive.write_out(str(dest), verbose=False)
    return dest


class SavedModelPredictor:
    """Runs the `serving_default` signature with TensorFlow."""

    runtime = "tensorflow"

    def __init__(self, path: str | Path):
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(str(path))  # a graph + variables; nothing is unpickled
        self._fn = self._loaded.signatures["serving_default"]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = self._fn(image=self._tf.constant(images, self._tf.uint8))
        return np.asarray(out["probabilities"], dtype=np.float32)


def load(out_dir: str | Path, shape=None) -> SavedModelPredictor:
    return SavedModelPredictor(Path(out_dir) / FILE)
