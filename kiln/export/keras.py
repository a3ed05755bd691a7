"""Keras 3 `.keras` export: the trained model behind the signature's typed inputs, loadable in safe mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np

QUANTIZE = ("none",)
FILE = "model.keras"
NOTES = {"none": "float32 weights; inputs as the signature types them, cast inside the model; outputs float32"}


def wrap(model, signature):
    """`model` behind one typed `keras.Input` per signature input (named as in the signature): same outputs.
    A single input or output is passed bare, as Keras users expect."""
    import keras

    inputs = {t.name: keras.Input(shape=t.shape, dtype=t.dtype, name=t.name) for t in signature.inputs}
    outputs = signature.call(model, inputs)
    outputs = outputs[signature.outputs[0].name] if len(signature.outputs) == 1 else outputs
    return keras.Model(next(iter(inputs.values())) if len(inputs) == 1 else inputs, outputs, name="kiln_export")


def write(model, signature, out_dir: Path, quantize: str = "none", calibration=None) -> Path:
    from kiln.io import save_model

    return save_model(wrap(model, signature), Path(out_dir) / FILE)


def load_keras(path: str | Path):
    """Load an exported `.keras` file in safe mode (no Lambda layers, nothing unpickled); one FileError line when it cannot be."""
    from kiln import io

    return io.load_keras(path, fix="Export the run again with kiln export")


class KerasPredictor:
    """The signature's inputs -> its first output (float32) through one traced `tf.function` (no
    per-call retracing). Serves a trained model, or an exported one that already has the signature's inputs."""

    runtime = "keras"

    def __init__(self, model, signature, exported: bool = False):
        from kiln.export import traced

        self.model = model
        self._names = signature.input_names
        self._out = signature.outputs[0].name
        self.output_names = [t.name for t in signature.outputs]
        if exported:  # a kiln_export model: its inputs are the signature's; call it as it is
            import tensorflow as tf

            from kiln.export import tf_specs

            one, names = len(self._names) == 1, self.output_names

            def call(x):
                out = model(x[self._names[0]] if one else x, training=False)
                return dict(out) if isinstance(out, dict) else {names[0]: out}

            self._fn = tf.function(call, input_signature=[tf_specs(signature)])
        else:
            self._fn, _ = traced(model, signature)

    def outputs(self, x) -> dict[str, np.ndarray]:
        """Every named output of the signature for `x` (float32)."""
        from kiln.export import as_inputs

        out = self._fn(as_inputs(self._names, x))
        return {name: np.asarray(out[name], dtype=np.float32) for name in self.output_names}

    def __call__(self, x) -> np.ndarray:
        from kiln.export import as_inputs

        out = self._fn(as_inputs(self._names, x))[self._out]
        return np.asarray(out, dtype=np.float32)


def load(out_dir: str | Path, signature) -> KerasPredictor:
    from kiln.io import read_json
    from kiln.user_model import load_model

    manifest = read_json(Path(out_dir) / "export.json", "a Kiln export.json") if (Path(out_dir) / "export.json").is_file() else {}
    return KerasPredictor(load_model(Path(out_dir) / FILE, manifest, load_keras), signature, exported=True)
