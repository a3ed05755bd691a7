"""TFLite (LiteRT) export through `tf.lite.TFLiteConverter.from_saved_model`, run by `ai_edge_litert`.

The converter reads a SavedModel whose signature already takes uint8 pixels, so every variant keeps a
uint8 `(N, H, W, C)` input (resizable batch) and a float32 probabilities output:

- none:    float32 weights and activations.
- float16: float16 weights, dequantized to float32 at load; float32 compute.
- dynamic: int8 weights, activations quantized on the fly (dynamic-range quantization).
- int8:    full-integer: int8 weights and activations calibrated on a sample of the training split,
           only int8 builtin ops; the uint8 input is cast and quantized (CAST -> QUANTIZE) inside the
           model and the softmax output is dequantized to float32 (DEQUANTIZE).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

QUANTIZE = ("none", "float16", "dynamic", "int8")
FILE = "model.tflite"
NOTES = {
    "none": "float32 weights and compute; uint8 input cast to float32 inside the model; output float32 probabilities",
    "float16": "float16 weights (dequantized to float32 at load), float32 compute; uint8 input; output float32",
    "dynamic": "dynamic-range: int8 weights, activations quantized at run time; uint8 input; output float32",
    "int8": ("full-integer: int8 weights and activations calibrated on {n} training images, int8 builtin ops only; "
             "uint8 input cast and quantized inside the model (CAST -> QUANTIZE); softmax output dequantized to float32"),
}


def convert(saved_model_dir: str | Path, quantize: str, calibration=None, names: list[str] | None = None,
            uint8_inputs: bool = True) -> bytes:
    """A SavedModel -> TFLite flatbuffer bytes; `uint8_inputs`: the signature takes uint8 (pixels) only."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 needs calibration images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration, names)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if uint8_inputs:
            converter.inference_input_type = tf.uint8  # the signature is uint8 already; kept explicit
        converter.inference_output_type = tf.float32
    return converter.convert()


def _representative(calibration, names: list[str] | None):
    """One calibration row at a time: a list holding the one input, or a dict by input name for several."""
    if not isinstance(calibration, dict):
        return lambda: ([calibration[i:i + 1]] for i in range(len(calibration)))
    n = len(next(iter(calibration.values())))
    return lambda: ({k: v[i:i + 1] for k, v in calibration.items()} for i in range(n))


def write(model, signature, out_dir: Path, quantize: str = "none", calibration=None) -> Path:
    from kiln.export import savedmodel
    from kiln.io import atomic_path

    with tempfile.TemporaryDirectory(prefix="kiln-tflite-") as tmp:
        sm = savedmodel.write(model, signature, Path(tmp), "none")
        flatbuffer = convert(sm, quantize, calibration, signature.input_names,
                             uint8_inputs=all(t.dtype == "uint8" for t in signature.inputs))
    dest = Path(out_dir) / FILE
    with atomic_path(dest) as tmp_file:
        tmp_file.write_bytes(flatbuffer)
    return dest


class TFLitePredictor:
    """Runs a .tflite file in the LiteRT interpreter; resizes the batch dimension when it changes.

    Not thread-safe (no TFLite interpreter is): the server calls it from one thread.
    """

    runtime = "litert"

    def __init__(self, path: str | Path, signature=None, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self._interp = Interpreter(model_path=str(path), num_threads=num_threads or os.cpu_count() or 1)
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._batch = None
        self._dtype = np.dtype(signature.inputs[0].dtype) if signature is not None else np.uint8
        self._runner = None
        self.output_names = [t.name for t in signature.outputs] if signature is not None else ["output"]
        if signature is not None and (len(signature.inputs) > 1 or len(signature.outputs) > 1):
            # several named inputs or outputs: the signature runner maps them by name
            self._runner = self._interp.get_signature_runner("serving_default")
            self._names, self._first = signature.input_names, signature.outputs[0].name

    def outputs(self, x) -> dict[str, np.ndarray]:
        """Every named output of the signature for `x` (float32)."""
        if self._runner is None:
            return {self.output_names[0]: self(x)}
        feed = x if isinstance(x, dict) else {self._names[0]: np.ascontiguousarray(x, dtype=self._dtype)}
        out = self._runner(**feed)
        return {name: np.array(out[name], dtype=np.float32) for name in self.output_names}

    def tensor_types(self) -> dict[str, int]:
        """Count of tensors per dtype (int8 models hold mostly int8 tensors)."""
        counts: dict[str, int] = {}
        for t in self._interp.get_tensor_details():
            name = np.dtype(t["dtype"]).name
            counts[name] = counts.get(name, 0) + 1
        return counts

    def __call__(self, images) -> np.ndarray:
        if self._runner is not None:
            return self.outputs(images)[self._first]
        images = np.ascontiguousarray(images, dtype=self._dtype)
        if images.shape[0] != self._batch:
            self._interp.resize_tensor_input(self._in["index"], images.shape)
            self._interp.allocate_tensors()
            self._batch = images.shape[0]
        self._interp.set_tensor(self._in["index"], images)
        self._interp.invoke()
        return np.array(self._interp.get_tensor(self._out["index"]), dtype=np.float32)


def load(out_dir: str | Path, signature=None) -> TFLitePredictor:
    return TFLitePredictor(Path(out_dir) / FILE, signature)
