"""`model=FILE.py:build` for images (kiln/user_model.py): the image task's front around your body."""

from __future__ import annotations


def custom_builder(body):
    """A registry builder: uint8 pixels -> Rescaling(1/255) -> your body -> (N, K) probabilities, or (N, 1) in the
    target's standardised units for a numeric target (the task's build_model asks one unit and rescales it)."""
    def build(input_shape, num_classes, **_):
        import keras

        from kiln.user_model import BuildSpec

        value = num_classes == 1  # build_model asks one unit for a numeric target, two or more for classes
        spec = BuildSpec("image", tuple(input_shape), "float32", int(num_classes), "value" if value else "probabilities",
                         "linear" if value else "softmax", extra={"pixels": "RGB or grey, scaled to [0, 1]"})
        net = body(spec)
        inputs = keras.Input(shape=tuple(input_shape), name="image")  # (B, H, W, C) raw pixels
        return keras.Model(inputs, net(keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)), name="custom")

    return build
