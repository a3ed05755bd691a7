"""export stage: one module per format (keras, savedmodel, tflite, onnx), parity checks, `kiln export`.

Every runtime writes the run's task's `Signature` (kiln/tasks/base.py): named raw inputs in (their
preprocessing inside the graph), named outputs out; the export carries export.json (and labels.txt when
the outputs are classes). Predictors take one array for a single-input signature, else a dict by name,
and return the first output.
"""

FORMATS = ("keras", "savedmodel", "tflite", "onnx")


def tf_specs(signature) -> dict:
    """{input name: tf.TensorSpec with a free batch axis} for a tf.function's one dict argument."""
    import tensorflow as tf

    return {t.name: tf.TensorSpec((None, *t.shape), tf.as_dtype(t.dtype), name=t.name) for t in signature.inputs}


def traced(model, signature):
    """The signature's function as a tf.function of one dict of inputs -> dict of outputs, and its specs."""
    import tensorflow as tf

    specs = tf_specs(signature)

    @tf.function(input_signature=[specs])
    def serve(inputs):
        return signature.call(model, inputs)

    return serve, specs


def as_inputs(signature_names: list[str], x) -> dict:
    """A predictor's argument (one array, or a dict by input name) as a dict by input name."""
    return x if isinstance(x, dict) else {signature_names[0]: x}
