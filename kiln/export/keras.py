"""Keras 3 `.keras` export: the trained model behind a uint8 input, loadable in safe mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np

QUANTIZE = ("none",)
FILE = "model.keras"
NOTES = {"none": "float32 weights; uint8 input cast to float32 by the model; output float32 probabilities"}


def wrap_uint8(model, shape: tuple[int, int, int]):
    """`model` (float input of raw 0-255 pixels) behind a `uint8` input named `image`: same outputs."""
    import keras

    inputs = keras.Input(shape=shape, dtype="uint8", name="image")  # (B, H, W, C) raw pixels
    return keras.Model(inputs, model(inputs), name="kiln_export")


def write(model, shape, out_dir: Path, quantize: str = "none", calibration=None) -> Path:
    from kiln.io import save_model

    return save_model(wrap_uint8(model, shape), Path(out_dir) / FILE)


def load_keras(path: str | Path):
    """Load an exported `.keras` file in safe mode (no Lambda layers, nothing unpickled); one FileError line when it cannot be."""
    from kiln import io

    return io.load_keras(path, fix="Export the run again with kiln export")


class KerasPredictor:
    """(N, H, W, C) uint8 -> (N, K) float32 through one traced `tf.function` (no per-call retracing)."""

    runtime = "keras"

    def __init__(self, model, shape: tuple[int, int, int]):
        import tensorflow as tf

        self.model = model
        dtype = model.inputs[0].dtype
        spec = tf.TensorSpec((None, *shape), tf.uint8, name="image")
        self._fn = tf.function(lambda x: model(tf.cast(x, dtype), training=False), input_signature=[spec])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(images), dtype=np.float32)


def load(out_dir: str | Path, shape) -> KerasPredictor:
    return KerasPredictor(load_keras(Path(out_dir) / FILE), shape)
