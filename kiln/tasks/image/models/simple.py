"""From-scratch families: `linear` (softmax regression), `dnn` (MLP) and `cnn` (conv blocks).

All take raw pixels: a `Rescaling(1/255)` layer comes first. BatchNorm uses momentum 0.9 (Keras's
default is 0.99): small datasets give few steps per epoch, and slow moving statistics would leave
validation far behind training for the first epochs.
"""

from __future__ import annotations

import keras
from keras import layers

from kiln.tasks.image.models.registry import register_model


def _regularizer(l1: float, l2: float):
    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


def _dense_block(x, units: int, *, batchnorm: bool, activation: str, dropout: float, initializer: str, reg, name: str):
    # Dense -> BatchNorm -> activation -> Dropout; bias is redundant before BatchNorm.
    x = layers.Dense(units, use_bias=not batchnorm, kernel_initializer=initializer, kernel_regularizer=reg, name=f"{name}_dense")(x)
    if batchnorm:
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    x = layers.Activation(activation, name=f"{name}_act")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return x


def _classifier(x, num_classes: int, initializer: str = "glorot_uniform", reg=None):
    # float32 output keeps softmax stable under mixed precision.
    return layers.Dense(num_classes, activation="softmax", kernel_initializer=initializer,
                        kernel_regularizer=reg, dtype="float32", name="predictions")(x)


@register_model()
def linear(input_shape, num_classes, l1: float = 0.0, l2: float = 0.0):
    """Softmax regression on raw pixels: the baseline every other model must beat."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = layers.Flatten(name="flatten")(x)
    outputs = _classifier(x, num_classes, reg=_regularizer(l1, l2))
    return keras.Model(inputs, outputs, name="linear")


@register_model()
def dnn(input_shape, num_classes, units=(256, 128), batchnorm: bool = True, activation: str = "relu",
        dropout: float = 0.25, l1: float = 0.0, l2: float = 0.0, initializer: str = "he_normal"):
    """Multi-layer perceptron: Dense -> BatchNorm -> activation -> Dropout blocks."""
    reg = _regularizer(l1, l2)
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = layers.Flatten(name="flatten")(x)  # (B, H*W*C)
    for i, n in enumerate(units):
        x = _dense_block(x, n, batchnorm=batchnorm, activation=activation, dropout=dropout,
                         initializer=initializer, reg=reg, name=f"fc{i + 1}")
    outputs = _classifier(x, num_classes, reg=reg)
    return keras.Model(inputs, outputs, name="dnn")


@register_model()
def cnn(input_shape, num_classes, filters=(32, 64, 128), convs_per_block: int = 1, kernel_size: int = 3,
        strides: int = 1, padding: str = "same", pooling: str = "max", batchnorm: bool = True,
        activation: str = "relu", dropout: float = 0.25, head: str = "gap", units=(128,),
        l1: float = 0.0, l2: float = 0.0, initializer: str = "he_normal"):
    """Conv blocks (Conv -> BatchNorm -> activation) x n, pooling, dropout; GAP or flatten head."""
    reg = _regularizer(l1, l2)
    inputs = keras.Input(shape=input_shape, name="image")  # (B, H, W, C) raw pixels
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for b, f in enumerate(filters):
        for c in range(convs_per_block):
            name = f"block{b + 1}_conv{c + 1}"
            x = layers.Conv2D(f, kernel_size, strides=strides if c == 0 else 1, padding=padding,
                              use_bias=not batchnorm, kernel_initializer=initializer, kernel_regularizer=reg, name=name)(x)
            if batchnorm:
                x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
            x = layers.Activation(activation, name=f"{name}_act")(x)
        if pooling != "none" and min(x.shape[1], x.shape[2]) >= 2:
            pool = layers.MaxPooling2D if pooling == "max" else layers.AveragePooling2D
            x = pool(2, name=f"block{b + 1}_pool")(x)  # (B, H/2, W/2, f)
        if dropout:
            x = layers.Dropout(dropout / 2, name=f"block{b + 1}_drop")(x)
    if head == "gap":
        x = layers.GlobalAveragePooling2D(name="gap")(x)  # (B, f)
    else:
        x = layers.Flatten(name="flatten")(x)
    for i, n in enumerate(units):
        x = _dense_block(x, n, batchnorm=batchnorm, activation=activation, dropout=dropout,
                         initializer=initializer, reg=reg, name=f"fc{i + 1}")
    outputs = _classifier(x, num_classes, reg=reg)
    return keras.Model(inputs, outputs, name="cnn")
