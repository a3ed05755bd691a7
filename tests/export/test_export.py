"""kiln export: every format written, loaded back in its own runtime, and compared with the Keras model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import avx2  # tests/avx2.py
import numpy as np
import pytest

COMBOS = [("keras", "none"), ("savedmodel", "none"), ("tflite", "none"), ("tflite", "float16"), ("tflite", "dynamic"),
          ("tflite", "int8"), ("onnx", "none"), ("onnx", "dynamic"), ("onnx", "int8")]
FILES = {"keras": "model.keras", "savedmodel": "saved_model", "tflite": "model.tflite", "onnx": "model.onnx"}
FAST = {"latency_runs": 5, "batch_runs": 2, "batch_size": 8}  # timing figures are not what these tests check


@pytest.fixture(scope="module")
def test_images(tiny_run):
    """(paths, uint8 images decoded as in training, labels, Keras probabilities from Run.predict_proba)."""
    from kiln.tasks.image.export import decode

    rows = tiny_run.splits[tiny_run.splits["split"] == "test"]
    paths = rows["path"].tolist()
    y = np.array([tiny_run.classes.index(c) for c in rows["label"]])
    return paths, decode(tiny_run, paths), y, tiny_run.predict_proba(paths)


@pytest.fixture(scope="module")
def exports(tiny_run, tmp_path_factory):
    """Exports made on first use and shared by the tests of this module."""
    from kiln.export.export import export_run

    root = tmp_path_factory.mktemp("exports")
    made = {}

    def get(fmt, quantize):
        if (fmt, quantize) not in made:
            made[fmt, quantize] = export_run(tiny_run.path, fmt, quantize, out=str(root / f"{fmt}-{quantize}"),
                                             calibration_images=48, timing=FAST)
        return made[fmt, quantize]

    return get


def run_in_own_runtime(fmt: str, path: Path, images: np.ndarray) -> tuple[np.ndarray, str]:
    """Probabilities and input dtype, loading the artifact directly with its runtime (not through Kiln)."""
    if fmt == "keras":
        import keras

        model = keras.saving.load_model(path / "model.keras", safe_mode=True, compile=False)
        return np.asarray(model.predict(images, verbose=0)), str(model.inputs[0].dtype)
    if fmt == "savedmodel":
        import tensorflow as tf

        fn = tf.saved_model.load(str(path / "saved_model")).signatures["serving_default"]
        dtype = fn.structured_input_signature[1]["image"].dtype.name
        return fn(image=tf.constant(images))["probabilities"].numpy(), dtype
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(path / "model.tflite"))
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        interp.resize_tensor_input(inp["index"], images.shape)
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], images)
        interp.invoke()
        return interp.get_tensor(out["index"]).copy(), np.dtype(inp["dtype"]).name
    import onnxruntime as ort

    session = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": images})[0], session.get_inputs()[0].type


@pytest.mark.parametrize("fmt,quantize", COMBOS)
def test_export_agrees_in_its_own_runtime(exports, tiny_run, test_images, fmt, quantize):
    m = exports(fmt, quantize)
    out = Path(m["out"])
    manifest = json.loads((out / "export.json").read_text())
    for key in ("format", "quantize", "agreement", "agreement_rule", "metric", "score", "keras_score", "size_bytes", "max_abs_diff",
                "latency_ms", "throughput", "keras_latency_ms", "keras_throughput"):
        assert key in manifest, key
    assert (manifest["format"], manifest["quantize"]) == (fmt, quantize)
    assert (out / "labels.txt").read_text().splitlines() == tiny_run.classes
    assert (out / FILES[fmt]).exists()
    assert manifest["parity_split"] == "test" and manifest["parity_n"] == 12
    assert manifest["input"] == {"name": "image", "dtype": "uint8", "shape": [None, 32, 32, 3]}
    assert manifest["passed"] is True and manifest["agreement"] >= 0.99
    assert manifest["size_bytes"] > 0 and manifest["latency_ms"] > 0 and manifest["throughput"] > 0

    paths, images, y, keras_probs = test_images
    probs, dtype = run_in_own_runtime(fmt, out, images)
    assert "uint8" in dtype  # the export takes raw pixels
    assert probs.shape == keras_probs.shape
    # What kiln export promises for every format: the Keras model's top-1 answer (min_agreement=0.99;
    # here all 12 test images), and accuracy figures that are the export's own.
    assert np.mean(probs.argmax(1) == keras_probs.argmax(1)) >= 0.99
    assert manifest["metric"] == "accuracy" and manifest["score"] == pytest.approx(np.mean(probs.argmax(1) == y))
    assert manifest["keras_score"] == pytest.approx(np.mean(keras_probs.argmax(1) == y))
    if quantize == "none":
        # The same float32 graph in another runtime: only the order of float32 operations differs
        # (~1e-7 relative a layer, a few layers), on any CPU; 1e-5 leaves a 10x margin.
        assert np.abs(probs - keras_probs).max() < 1e-5 and manifest["max_abs_diff"] < 1e-5
        return
    # Rounded weights (and activations) move each probability by an amount no scale bounds in
    # advance, so no per-probability tolerance is asserted; what the scale does fix is the output:
    step = OUTPUT_STEP.get((fmt, quantize), 0.0)
    k = probs.shape[1]
    assert probs.min() >= 0 and probs.max() <= 1 + 1e-6
    if step:  # full-integer: each probability is q * step, a softmax (summing to 1) rounded to the grid,
        # <= step / 2 each; k * step leaves the kernels' fixed-point exp and reciprocal another step / 2 each
        assert np.abs(probs / step - np.round(probs / step)).max() < 1e-3
        assert np.abs(probs.sum(1) - 1).max() <= k * step
    else:  # float softmax
        assert np.abs(probs.sum(1) - 1).max() < 1e-5


# Output quantization of the full-integer exports: TFLite's int8 softmax output is fixed at scale 1/256
# (zero point -128); onnxruntime's QDQ softmax output is calibrated to [0, 1] as uint8, scale 1/255.
OUTPUT_STEP = {("tflite", "int8"): 1 / 256, ("onnx", "int8"): 1 / 255}


def _quantized_weights(model) -> list[tuple[str, np.ndarray]]:
    """(op, integer weights) of every Conv / MatMul / Gemm of an ONNX graph, QDQ or integer ops."""
    from onnx import numpy_helper

    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    made_by = {o: n for n in model.graph.node for o in n.output}
    found = []
    for node in model.graph.node:
        if node.op_type in ("ConvInteger", "MatMulInteger"):
            found.append((node.op_type, init[node.input[1]]))
        elif node.op_type in ("Conv", "MatMul", "Gemm"):
            src = made_by.get(node.input[1])
            w = init[src.input[0]] if src is not None and src.op_type == "DequantizeLinear" else init.get(node.input[1])
            found.append((node.op_type, w))
    return found


@pytest.mark.parametrize("quantize", ["dynamic", "int8"])
def test_onnx_quantized_weights_cannot_saturate_without_vnni(exports, quantize):
    """On x86-64 CPUs without VNNI (AVX2; AVX-512 before Cascade Lake), onnxruntime multiplies uint8
    activations by int8 weights with VPMADDUBSW, which adds each pair of products into a saturating
    int16: 2 * 255 * 127 = 64,770 > 32,767, and the export then computes other numbers there than here
    (up to 0.07 off in probability on such a CPU). Kiln writes weights that make the overflow impossible:
    int8 within [-64, 64] (2 * 255 * 64 = 32,640 <= 32,767), or uint8, whose uint8 x uint8 kernels widen
    to int16 before multiplying (VPMADDWD, int32 sums). Checked on the file, so on any CPU."""
    import onnx

    weights = _quantized_weights(onnx.load(Path(exports("onnx", quantize)["out"]) / "model.onnx"))
    assert len(weights) == 4  # 2 convolutions + 2 dense layers, all quantized
    for op, w in weights:
        assert w is not None and w.dtype in (np.int8, np.uint8), (op, None if w is None else w.dtype)
        if w.dtype == np.int8:
            assert np.abs(w.astype(int)).max() <= 64, (op, int(np.abs(w.astype(int)).max()))


def test_int8_tflite_is_integer_and_smaller(exports):
    float_m, int8_m = exports("tflite", "none"), exports("tflite", "int8")
    types = int8_m["tensor_types"]
    assert types.get("int8", 0) > types.get("float32", 0)  # weights and activations are int8
    assert float_m["tensor_types"].get("int8", 0) == 0
    assert int8_m["size_bytes"] < 0.6 * float_m["size_bytes"]
    assert int8_m["calibration_examples"] == 48
    assert "CAST -> QUANTIZE" in int8_m["notes"]


def test_unsupported_combinations_and_existing_out(tiny_run, exports):
    from kiln.errors import ConfigError
    from kiln.export.export import export_run

    with pytest.raises(ConfigError, match="onnx exports support quantize=none|dynamic|int8"):
        export_run(tiny_run.path, "onnx", "float16")
    with pytest.raises(ConfigError, match="keras exports support quantize=none"):
        export_run(tiny_run.path, "keras", "int8")
    with pytest.raises(ConfigError, match="Did you mean format=tflite"):
        export_run(tiny_run.path, "tflit")
    existing = exports("onnx", "none")["out"]
    with pytest.raises(ConfigError, match="never overwrites"):
        export_run(tiny_run.path, "onnx", out=existing)


@pytest.fixture(scope="module")
def flat_run(tiny_run, cli_dir):
    """A copy of tiny_run whose softmax inputs are shrunk 1000x: probabilities all ~1/3, in the same order.

    Keras still ranks the classes correctly; int8's output step (1/256) flattens them to ties.
    """
    import keras

    run_dir = cli_dir / "flat"
    shutil.copytree(tiny_run.path, run_dir, ignore=shutil.ignore_patterns("checkpoints", "plots", "exports"))
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    layer = model.get_layer("predictions")
    layer.set_weights([w * 1e-3 for w in layer.get_weights()])
    (run_dir / "model.keras").unlink()
    model.save(run_dir / "model.keras")
    return run_dir


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("export-cli")


def test_low_agreement_exits_1_unless_forced(flat_run, cli_dir, capsys):
    from kiln.cli import main
    from kiln.export.export import export_run

    out = cli_dir / "flat-int8"
    code = main(["export", str(flat_run), "format=tflite", "quantize=int8", f"out={out}", "calibration_examples=48"])
    printed = capsys.readouterr()
    assert code == 1
    assert "FAILED" in printed.out and "agreement (same top class)" in printed.out  # the figures are printed
    assert "min_agreement=0.99" in printed.err and "force=true" in printed.err
    assert not out.exists()  # nothing is kept
    assert not [p for p in cli_dir.iterdir() if p.name.startswith(".flat-int8")]  # no staging folder left behind

    m = export_run(flat_run, "tflite", "int8", out=str(out), force=True, calibration_images=48, timing=FAST)
    assert m["agreement"] < 0.99 and m["passed"] is False and m["forced"] is True
    assert m["keras_score"] >= 0.9 and m["score"] < m["keras_score"]  # the flattening is what the check caught
    assert json.loads((out / "export.json").read_text())["forced"] is True


def test_cli_export_prints_table(tiny_run, cli_dir, capsys):
    from kiln.cli import main

    out = cli_dir / "cli-onnx"
    assert main(["export", str(tiny_run.path), "format=onnx", f"out={out}"]) == 0
    printed = capsys.readouterr().out
    for word in ("accuracy", "agreement (same top class)", "size", "latency, 1 example", "ex/s", "test examples", "passed", str(out)):
        assert word in printed
    assert "img/s" not in printed and " images" not in printed  # the words fit every task, not images alone
    assert json.loads((out / "export.json").read_text())["agreement"] == 1.0
    assert main(["export", str(tiny_run.path), "format=onnx", f"out={out}"]) == 2  # never overwrites
    assert "never overwrites" in capsys.readouterr().err



def test_converter_failure_is_one_line_and_leaves_nothing(tiny_run, cli_dir, monkeypatch):
    from kiln.errors import KilnError
    from kiln.export import tflite
    from kiln.export.export import export_run

    def broken(*args, **kwargs):
        raise RuntimeError("op FOO is not supported by the int8 kernels\nlong converter log")

    monkeypatch.setattr(tflite, "convert", broken)
    out = cli_dir / "broken"
    with pytest.raises(KilnError, match=r"the tflite converter failed on this model \(RuntimeError: op FOO is not supported"):
        export_run(tiny_run.path, "tflite", "int8", out=str(out), calibration_images=8)
    assert not out.exists() and not [p for p in cli_dir.iterdir() if p.name.startswith(".broken")]


@pytest.mark.skipif(not avx2.available(), reason="needs qemu-x86_64 (apt-get install qemu-user) to emulate a CPU without VNNI")
def test_quantized_exports_give_the_same_answers_on_a_cpu_without_vnni(exports, test_images):
    """The integer exports run on an emulated AVX2 CPU without AVX-512 or VNNI (tests/avx2.py checks that its
    uint8 x int8 sums do saturate): the same top-1 answers as here, and no further from this machine's
    numbers than quantizing moved them from Keras. Before 7-bit / uint8 weights, ONNX moved 0.07 there."""
    _, images, _, keras_probs = test_images
    combos = [("tflite", "dynamic"), ("tflite", "int8"), ("onnx", "dynamic"), ("onnx", "int8")]
    files = {f"{f}-{q}": Path(exports(f, q)["out"]) / FILES[f] for f, q in combos}
    there, _ = avx2.emulated(files, images, timeout=600)
    for (fmt, quantize), (name, path) in zip(combos, files.items()):
        here, _ = run_in_own_runtime(fmt, path.parent, images)
        assert (there[name].argmax(1) == here.argmax(1)).all(), name
        assert np.mean(there[name].argmax(1) == keras_probs.argmax(1)) >= 0.99, name
        assert np.abs(there[name] - here).max() <= np.abs(here - keras_probs).max(), name
