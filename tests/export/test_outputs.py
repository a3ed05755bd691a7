"""Several named outputs travel through every export runtime, and parity is checked on each of them.

A task whose model answers more than one thing (a score and a flag, boxes and classes) declares each output in its
Signature; every runtime must return all of them by name, and an export passes only when every output agrees.
"""

import numpy as np
import pytest

from kiln.export.parity import class_parity, compare
from kiln.tasks.types import Signature, TensorSpec


def _model_and_signature():
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(8, activation="relu")(x)
    probs = keras.layers.Dense(3, activation="softmax")(h)
    score = keras.layers.Dense(1)(h)
    model = keras.Model(x, [probs, score])
    names = ("probabilities", "score")

    def call(m, inputs):
        out = m(inputs["x"])
        return dict(zip(names, out))

    signature = Signature((TensorSpec("x", "float32", (4,)),), (TensorSpec("probabilities", "float32", (3,)),
                                                                 TensorSpec("score", "float32", (1,))), call)
    return model, signature


@pytest.mark.parametrize("fmt", ["keras", "savedmodel", "onnx", "tflite"])
def test_every_runtime_returns_every_named_output(fmt, tmp_path):
    import importlib

    from kiln.export.keras import KerasPredictor

    model, signature = _model_and_signature()
    module = importlib.import_module(f"kiln.export.{fmt}")
    module.write(model, signature, tmp_path, "none")
    exported = module.load(tmp_path, signature)
    reference = KerasPredictor(model, signature)
    x = np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32)
    want, got = reference.outputs(x), exported.outputs(x)
    assert set(got) == {"probabilities", "score"} and got["probabilities"].shape == (10, 3) and got["score"].shape == (10, 1)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-4)
    np.testing.assert_allclose(exported(x), want["probabilities"], atol=1e-4)  # the first output stays the default

    y = want["probabilities"].argmax(1)
    figures = compare(reference, exported, x, y, class_parity, {"latency_runs": 2, "batch_runs": 1, "batch_size": 4})
    assert set(figures["outputs"]) == {"probabilities", "score"}
    assert figures["agreement"] == 1.0 and figures["outputs"]["score"]["max_abs_diff"] < 1e-3


def test_an_output_that_disagrees_fails_the_whole_export():
    class Fake:
        output_names = ["probabilities", "score"]

        def __init__(self, shift):
            self.shift = shift

        def outputs(self, x):
            return {"probabilities": np.tile([[0.2, 0.8]], (len(x), 1)), "score": x[:, :1] + self.shift}

        def __call__(self, x):
            return self.outputs(x)["probabilities"]

    x = np.linspace(0, 1, 20, dtype=np.float32).reshape(10, 2)
    figures = compare(Fake(0.0), Fake(0.5), x, np.ones(10, int), class_parity, {"latency_runs": 1, "batch_runs": 1})
    assert figures["outputs"]["probabilities"]["agreement"] == 1.0  # the first output alone would pass
    assert figures["outputs"]["score"]["agreement"] == 0.0 and figures["agreement"] == 0.0
