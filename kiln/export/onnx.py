"""ONNX export through tf2onnx (a uint8 `image` input, float32 `probabilities`), run by onnxruntime.

- none:    float32 graph (opset 17).
- dynamic: onnxruntime dynamic quantization: uint8 weights, uint8 activations quantized at run time.
- int8:    onnxruntime static QDQ quantization: 7-bit int8 weights (per channel, within [-64, 64]),
           uint8 activations calibrated on a sample of the training split; the uint8 input is cast to
           float inside.

Why these pairings: on x86-64 CPUs without VNNI (AVX2, AVX-512 before Cascade Lake), onnxruntime's
uint8 x int8 kernels multiply with VPMADDUBSW, which adds each pair of products into a saturating
int16: 2 * 255 * 127 = 64,770 > 32,767, so results (and accuracy) change with the CPU. Weights
within [-64, 64] (`reduce_range`) keep every pair sum <= 2 * 255 * 64 = 32,640; uint8 x uint8 kernels
widen to int16 first (VPMADDWD, int32 sums) and cannot saturate. Either way every AVX2 CPU computes
the exact integer sums a VNNI CPU does. `int8` keeps the fast uint8 x int8 kernels (VNNI where
present); `dynamic` uses uint8 weights because onnxruntime's ConvInteger with int8 weights is many
times slower. Measured with and without VNNI (emulated): BENCHMARKS.md, bench/export.py --onnx-choices.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

QUANTIZE = ("none", "dynamic", "int8")
FILE = "model.onnx"
OPSET = 17
NOTES = {
    "none": "float32 graph (opset 17; 19 when an input is text); inputs as the signature types them, cast inside; float32 outputs",
    "dynamic": ("onnxruntime dynamic quantization: uint8 weights, uint8 activations quantized at run time (uint8 x uint8 "
                "kernels: no int16 saturation on CPUs without VNNI); uint8 input; output float32"),
    "int8": ("onnxruntime static QDQ quantization: 7-bit int8 per-channel weights (within [-64, 64], so uint8 x int8 "
             "pair sums cannot saturate on CPUs without VNNI), uint8 activations calibrated on {n} training images; "
             "uint8 input cast to float32 inside; output float32 probabilities"),
}


def to_onnx(model, signature, dest: Path) -> Path:
    import tf2onnx

    from kiln.export import traced

    serve, specs = traced(model, signature)
    if any(t.dtype == "string" for t in signature.inputs):
        return _text_to_onnx(serve, signature, dest)
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=[specs], opset=OPSET)
    if any(i.name not in signature.input_names for i in proto.graph.input):
        # constants the function captured (e.g. a table's per-column scalers) came out as graph inputs that
        # nothing feeds: convert the frozen graph instead, where they are constants
        return _frozen_to_onnx(serve, signature, dest, OPSET)
    import onnx

    onnx.save(proto, str(dest))
    return dest


TEXT_OPSET = 19  # ONNX Equal compares strings from opset 19 on; onnxruntime runs it


def _text_to_onnx(serve, signature, dest: Path) -> Path:
    """A signature with text inputs (e.g. categories compared with a vocabulary): tf2onnx 1.17 knows opsets up
    to 18 and turns a string `Equal` into int casts (wrong: "FIXME: casting is not the same as equal"). So the
    graph is frozen (constants captured by the function included), converted at opset 18 with string Equal
    kept as ONNX Equal, and declared opset 19, where that Equal is defined; the ops tf2onnx emits mean the
    same at 18 and 19. Inputs and outputs keep the signature's names."""
    return _frozen_to_onnx(serve, signature, dest, TEXT_OPSET - 1, {"Equal": (_equal, []), "NotEqual": (_equal, [])}, TEXT_OPSET)


def _frozen_to_onnx(serve, signature, dest: Path, opset: int, handlers=None, declare: int | None = None) -> Path:
    """The traced function frozen (captured variables and constants folded in), converted at `opset` with
    `handlers`, declared as opset `declare` when given; inputs and outputs keep the signature's names."""
    import onnx
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    tf_log = logging.getLogger("tensorflow")
    level = tf_log.level
    tf_log.setLevel(logging.ERROR)  # tf2onnx's loader calls TF1 graph utilities that warn they are deprecated
    try:
        frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
        names = [t.name for t in frozen.inputs]
        outputs = [t.name for t in frozen.outputs]
        proto, _ = tf2onnx.convert.from_graph_def(frozen.graph.as_graph_def(), input_names=names, output_names=outputs,
                                                  opset=opset, custom_op_handlers=handlers or {})
    finally:
        tf_log.setLevel(level)
    for entry in proto.opset_import if declare else ():
        if entry.domain in ("", "ai.onnx"):
            entry.version = declare
    rename = {n: n.split(":")[0] for n in names}
    rename.update(zip(outputs, sorted(t.name for t in signature.outputs)))  # a dict's outputs flatten in key order
    _rename(proto.graph, rename)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(dest))
    return dest


def _equal(ctx, node, name, args):
    """tf2onnx handler: string (Not)Equal stays an ONNX Equal (opset 19); other types as tf2onnx converts them."""
    from onnx import TensorProto
    from tf2onnx import utils
    from tf2onnx.onnx_opset.logical import Equal

    if ctx.get_dtype(node.input[0]) != TensorProto.STRING:
        Equal.version_11(ctx, node)
        return node
    if node.type == "NotEqual":
        node.type = "Equal"
        out = ctx.insert_new_node_on_output("Not", node.output[0], name=utils.make_name(node.name))
        ctx.copy_shape(node.output[0], out.output[0])
        ctx.copy_dtype(node.output[0], out.output[0])
    return node


def _rename(graph, rename: dict) -> None:
    """Graph inputs / outputs renamed, with every node reading or writing them."""
    for value in [*graph.input, *graph.output]:
        value.name = rename.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]


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


# onnxruntime quantization settings by name; `quantize=dynamic|int8` use DEFAULT, bench/export.py compares them all.
# "u8s8": uint8 activations x int8 weights; "7bit": reduce_range, weights in [-64, 64] instead of [-127, 127].
# Without VNNI, u8s8 and s8s8 (which onnxruntime runs as u8s8) at full range saturate; the others cannot.
CHOICES = {
    "dynamic-u8s8": {"mode": "dynamic", "weight_type": "QInt8"},
    "dynamic-u8s8-7bit": {"mode": "dynamic", "weight_type": "QInt8", "reduce_range": True},
    "dynamic-u8u8": {"mode": "dynamic", "weight_type": "QUInt8"},
    "qdq-u8s8": {"mode": "static", "quant_format": "QDQ", "activation_type": "QUInt8", "weight_type": "QInt8", "per_channel": True},
    "qdq-u8s8-7bit": {"mode": "static", "quant_format": "QDQ", "activation_type": "QUInt8", "weight_type": "QInt8",
                      "per_channel": True, "reduce_range": True},
    "qdq-u8u8": {"mode": "static", "quant_format": "QDQ", "activation_type": "QUInt8", "weight_type": "QUInt8", "per_channel": True},
    "qdq-s8s8": {"mode": "static", "quant_format": "QDQ", "activation_type": "QInt8", "weight_type": "QInt8", "per_channel": True},
    "qop-u8s8-7bit": {"mode": "static", "quant_format": "QOperator", "activation_type": "QUInt8", "weight_type": "QInt8",
                      "per_channel": True, "reduce_range": True},
}
DEFAULT = {"dynamic": "dynamic-u8u8", "int8": "qdq-u8s8-7bit"}


def quantize_file(src: Path, dest: Path, choice: str, calibration=None, input_names=None) -> Path:
    """Quantize the float ONNX file `src` into `dest` with the named CHOICES entry (`input_names`: the
    model's inputs, for calibration data given as a dict)."""
    import logging

    from onnxruntime import quantization as q

    settings = dict(CHOICES[choice])
    mode = settings.pop("mode")
    for key in ("quant_format",):
        if key in settings:
            settings[key] = getattr(q.QuantFormat, settings[key])
    for key in ("activation_type", "weight_type"):
        if key in settings:
            settings[key] = getattr(q.QuantType, settings[key])
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime.quantization warns through the root logger
    try:
        with tempfile.TemporaryDirectory(prefix="kiln-onnxq-") as tmp:
            prepped = Path(tmp) / "prepped.onnx"
            q.quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
            if mode == "dynamic":
                q.quantize_dynamic(str(prepped), str(dest), **settings)
            else:
                if calibration is None or len(calibration) == 0:
                    raise ValueError("int8 needs calibration images")
                if input_names is None:  # an array for the model's one input
                    import onnx

                    input_names = [i.name for i in onnx.load(str(src)).graph.input]
                q.quantize_static(str(prepped), str(dest), _Reader(calibration, input_names), **settings)
    finally:
        root.setLevel(level)
    return dest


def write(model, signature, out_dir: Path, quantize: str = "none", calibration=None) -> Path:
    from kiln.io import atomic_path

    dest = Path(out_dir) / FILE
    with tempfile.TemporaryDirectory(prefix="kiln-onnx-") as tmp:
        float_path = to_onnx(model, signature, Path(tmp) / "float.onnx")
        with atomic_path(dest) as tmp_dest:
            if quantize == "none":
                tmp_dest.write_bytes(float_path.read_bytes())
            else:
                quantize_file(float_path, tmp_dest, DEFAULT[quantize], calibration, signature.input_names)
    return dest


class OnnxPredictor:
    runtime = "onnxruntime"

    def __init__(self, path: str | Path, signature):
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self._dtypes = {t.name: np.dtype(object if t.dtype == "string" else t.dtype) for t in signature.inputs}
        self._out = signature.outputs[0].name
        self.output_names = [t.name for t in signature.outputs]

    def outputs(self, x) -> dict[str, np.ndarray]:
        """Every named output of the signature for `x` (float32)."""
        from kiln.export import as_inputs

        feed = {k: np.ascontiguousarray(v, dtype=self._dtypes[k]) for k, v in as_inputs(list(self._dtypes), x).items()}
        return {n: np.asarray(v, dtype=np.float32) for n, v in zip(self.output_names, self._session.run(self.output_names, feed))}

    def __call__(self, x) -> np.ndarray:
        from kiln.export import as_inputs

        feed = {k: np.ascontiguousarray(v, dtype=self._dtypes[k]) for k, v in as_inputs(list(self._dtypes), x).items()}
        return np.asarray(self._session.run([self._out], feed)[0], dtype=np.float32)


def load(out_dir: str | Path, signature) -> OnnxPredictor:
    return OnnxPredictor(Path(out_dir) / FILE, signature)
