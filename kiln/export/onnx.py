"""ONNX export through tf2onnx (a uint8 `image` input, float32 `probabilities`), run by onnxruntime.

- none:    float32 graph (opset 17).
- dynamic: onnxruntime dynamic quantization: int8 weights, activations quantized at run time.
- int8:    onnxruntime static QDQ quantization: int8 weights (per channel), uint8 activations
           calibrated on a sample of the training split; the uint8 input is cast to float inside.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

QUANTIZE = ("none", "dynamic", "int8")
FILE = "model.onnx"
OPSET = 17
NOTES = {
    "none": "float32 graph (opset 17); uint8 input cast to float32 inside; output float32 probabilities",
    "dynamic": "onnxruntime dynamic quantization: int8 weights, activations quantized at run time; uint8 input; output float32",
    "int8": ("onnxruntime static QDQ quantization: int8 per-channel weights, uint8 activations calibrated on {n} training "
             "images; uint8 input cast to float32 inside; output float32 probabilities"),
}


def to_onnx(model, signature, dest: Path) -> Path:
    import tf2onnx

    from kiln.export import traced

    serve, specs = traced(model, signature)
    tf2onnx.convert.from_function(serve, input_signature=[specs], opset=OPSET, output_path=str(dest))
    return dest


class _Reader:
    """onnxruntime CalibrationDataReader over calibration inputs (an array, or a dict by input name), one row at a time."""

    def __init__(self, inputs, names: list[str]):
        from kiln.export import as_inputs
        from kiln.export.parity import count, take

        feed = as_inputs(names, inputs)
        self._items = iter([take(feed, slice(i, i + 1)) for i in range(count(feed))])

    def get_next(self):
        return next(self._items, None)

    def rewind(self):  # pragma: no cover - only some calibrators call it
        pass


def write(model, signature, out_dir: Path, quantize: str = "none", calibration=None) -> Path:
    import logging

    from onnxruntime import quantization as q

    from kiln.io import atomic_path

    dest = Path(out_dir) / FILE
    with tempfile.TemporaryDirectory(prefix="kiln-onnx-") as tmp:
        float_path = to_onnx(model, signature, Path(tmp) / "float.onnx")
        with atomic_path(dest) as tmp_dest:
            if quantize == "none":
                tmp_dest.write_bytes(float_path.read_bytes())
            else:
                root = logging.getLogger()
                level = root.level
                root.setLevel(logging.ERROR)  # onnxruntime.quantization warns through the root logger
                try:
                    prepped = Path(tmp) / "prepped.onnx"
                    q.quant_pre_process(str(float_path), str(prepped), skip_symbolic_shape=True)
                    if quantize == "dynamic":
                        q.quantize_dynamic(str(prepped), str(tmp_dest), weight_type=q.QuantType.QInt8)
                    else:
                        if calibration is None or len(calibration) == 0:
                            raise ValueError("int8 needs calibration images")
                        q.quantize_static(str(prepped), str(tmp_dest), _Reader(calibration, signature.input_names), quant_format=q.QuantFormat.QDQ,
                                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8, per_channel=True)
                finally:
                    root.setLevel(level)
    return dest


class OnnxPredictor:
    runtime = "onnxruntime"

    def __init__(self, path: str | Path, signature):
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self._dtypes = {t.name: np.dtype(object if t.dtype == "string" else t.dtype) for t in signature.inputs}
        self._out = signature.outputs[0].name

    def __call__(self, x) -> np.ndarray:
        from kiln.export import as_inputs

        feed = {k: np.ascontiguousarray(v, dtype=self._dtypes[k]) for k, v in as_inputs(list(self._dtypes), x).items()}
        return np.asarray(self._session.run([self._out], feed)[0], dtype=np.float32)


def load(out_dir: str | Path, signature) -> OnnxPredictor:
    return OnnxPredictor(Path(out_dir) / FILE, signature)
