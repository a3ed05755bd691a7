"""`kiln export RUN format=keras|savedmodel|tflite` for a table run (onnx: see NO_ONNX): one named input per
column (strings for categories, float32 with NaN for numbers, days for dates), the preprocessing
inside, checked against the Keras model on the test split (agreement for classes, relative error
for regression) before it is kept.

It runs from the task's `Signature`, so it can give way to the spine's runtimes once those take one.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np

from kiln.errors import ConfigError, KilnError, received
from kiln.io import write_json, write_text

log = logging.getLogger("kiln.table")
FORMATS = ("keras", "savedmodel", "tflite")
NO_ONNX = ("tf2onnx 1.17 converts string Equal (the category lookup) only from ONNX opset 19 and supports opset 18 at most, "
           "and Keras StringLookup's hash table does not convert either")


def _tf_specs(sig):
    import tensorflow as tf

    return {t.name: tf.TensorSpec((None, *t.shape), tf.string if t.dtype == "string" else tf.float32, name=t.name) for t in sig.inputs}


def _serving_fn(model, sig):
    import tensorflow as tf

    specs = _tf_specs(sig)

    @tf.function(input_signature=[specs])
    def serve(inputs):
        return sig.call(model, inputs)

    return serve


def _frozen(model, sig):
    """The serving function with every variable folded into a constant (ONNX and TFLite want no state)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    return convert_variables_to_constants_v2(_serving_fn(model, sig).get_concrete_function())


def _write(fmt: str, model, sig, stage: Path) -> Path:
    import tensorflow as tf

    if fmt == "keras":
        path = stage / "model.keras"
        model.save(path)
        return path
    if fmt == "savedmodel":
        module = tf.Module()
        module.model = model
        module.serve = _serving_fn(model, sig)
        tf.saved_model.save(module, str(stage / "saved_model"), signatures={"serving_default": module.serve})
        return stage / "saved_model"
    if fmt == "onnx":
        import tf2onnx

        frozen = _frozen(model, sig)
        gd = frozen.graph.as_graph_def()
        tf2onnx.convert.from_graph_def(gd, input_names=[t.name for t in frozen.inputs], output_names=[t.name for t in frozen.outputs],
                                       opset=17, output_path=str(stage / "model.onnx"))
        return stage / "model.onnx"
    if fmt == "tflite":
        conv = tf.lite.TFLiteConverter.from_concrete_functions([_frozen(model, sig)])
        (stage / "model.tflite").write_bytes(conv.convert())
        return stage / "model.tflite"
    raise ConfigError(received("export", "format", fmt, "no such format for a table run", f"Formats: {', '.join(FORMATS)}"))


def load_predictor(fmt: str, path: Path, sig):
    """A function: dict of numpy inputs -> first output (N, K) as numpy, in the export's own runtime."""
    import tensorflow as tf

    out_name = sig.outputs[0].name
    if fmt == "keras":
        import keras

        import kiln.tasks.table.layers  # noqa: F401

        m = keras.saving.load_model(path, safe_mode=True, compile=False)
        return lambda x: np.asarray(m.predict_on_batch({k: tf.constant(v) for k, v in x.items()}))
    if fmt == "savedmodel":
        fn = tf.saved_model.load(str(path)).signatures["serving_default"]
        return lambda x: fn(**{k: tf.constant(v) for k, v in x.items()})[out_name].numpy()
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]

        def run(x):
            feed = {n: (x[n.split(":")[0]].astype(object) if x[n.split(":")[0]].dtype == object else x[n.split(":")[0]]) for n in names}
            return np.asarray(sess.run(None, feed)[0])

        return run
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(path))
        ins = {d["name"].split(":")[0]: d for d in interp.get_input_details()}
        out_index = interp.get_output_details()[0]["index"]

        def run(x):
            for name, d in ins.items():
                v = x[name]
                interp.resize_tensor_input(d["index"], v.shape)
            interp.allocate_tensors()
            for name, d in ins.items():
                v = x[name]
                interp.set_tensor(d["index"], v.astype(bytes) if v.dtype == object else v)
            interp.invoke()
            return np.asarray(interp.get_tensor(out_index))

        return run
    raise ConfigError(received("export", "format", fmt, "no such format", f"Formats: {', '.join(FORMATS)}"))


def _dir_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def export_table(run, fmt: str, out: str | None = None, force: bool = False, min_agreement: float = 0.99, limit: int = 2000) -> dict:
    from kiln.tasks.base import task_of
    from kiln.tasks.table.spec import predict_inputs

    if fmt is None:
        raise ConfigError(received("export", "format", "<none>", "a table export needs a format", f"Pass format= one of {', '.join(FORMATS)}"))
    if fmt == "onnx":
        raise ConfigError(received("export", "format", fmt, f"a table run cannot be exported to ONNX yet: {NO_ONNX}",
                                   f"Use format=savedmodel or tflite (also: {', '.join(FORMATS)})"))
    if fmt not in FORMATS:
        raise ConfigError(received("export", "format", fmt, "no such format for a table run", f"Formats: {', '.join(FORMATS)}"))
    task = task_of(run.meta)
    sig = task.signature(run)
    out_path = Path(out) if out else _numbered(run.path / "exports" / fmt)
    if out_path.exists():
        raise KilnError(received("export", "out", out_path, "it exists already and Kiln never overwrites an export", "Pick another out="))
    stage = out_path.parent / f".{out_path.name}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        artefact = _write(fmt, run.model, sig, stage)
        split, x, y = task.parity_data(run, limit)
        ref = predict_inputs(run.model, x)
        predictor = load_predictor(fmt, artefact, sig)
        started = time.time()
        cand = predictor(x)
        seconds = time.time() - started
        figures = task.parity(ref, cand, y)
        figures.update(n=int(len(y)), split=split, rows_per_s=round(len(y) / max(seconds, 1e-9)))
        info = {"format": fmt, "task": "table", "file": artefact.name, "size_bytes": _dir_size(artefact), **figures,
                **sig.to_dict(), "labels": sig.labels, **sig.meta}
        if figures["agreement"] < min_agreement and not force:
            raise KilnError(received("export", "format", fmt, f"the export agrees with the Keras model on {figures['agreement']:.2%} of "
                                     f"{figures['n']} {split} rows, so it was not kept", "Pass force=true to keep it anyway"))
        info["forced"] = bool(figures["agreement"] < min_agreement)
        write_json(stage / "export.json", info)
        if sig.labels:
            write_text(stage / "labels.txt", "\n".join(sig.labels) + "\n")
        stage.rename(out_path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    info["path"] = str(out_path)
    return info


def _numbered(base: Path) -> Path:
    for i in range(1, 10000):
        p = base if i == 1 else base.with_name(f"{base.name}-{i}")
        if not p.exists():
            return p
    raise KilnError(received("export", "out", base, "too many exports", "Pass out="))


__all__ = ["FORMATS", "export_table", "load_predictor"]
