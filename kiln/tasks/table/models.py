"""Table models: `linear`, `dnn`, `resnet_plr` and `tabm` (kiln/tasks/table/tabm.py), all on the same in-model preprocessing.

Builders take `(spec, num_outputs, **model keys)` and return an uncompiled keras.Model with one
named input per column and one output: `probabilities` (N, K) or `prediction` (N, 1) in the target's
own units (a fixed Rescaling undoes the target standardisation).

`resnet_plr`: the ResNet-like MLP of Gorishniy et al., "Revisiting Deep Learning Models for Tabular
Data" (2021), over the periodic PLR numeric embeddings of "On Embeddings for Numerical Features in
Tabular Deep Learning" (2022), which closes much of the gap to gradient-boosted trees.
"""

from __future__ import annotations

import numpy as np

from kiln.tasks.base import ModelRegistry

MODELS = ModelRegistry("table")
LARGE_ROWS = 20_000


def bn_momentum(spec) -> float:
    """BatchNorm's moving-statistics momentum: Keras' 0.99 for small tables, 0.9 from LARGE_ROWS training rows.

    A large table takes few, large steps an epoch (80,000 rows: 50 steps of 1,600); at 0.99 its val
    statistics lagged the training ones for eight epochs (val accuracy 0.63 after epoch 1 at 0.77 train).
    A small one takes many steps of 32 rows, whose statistics are noisy: at 0.9 the test R² of cars fell
    (0.81 -> 0.74 and 0.85 -> 0.80 on two seeds)."""
    return 0.9 if (getattr(spec, "train_rows", None) or 0) >= LARGE_ROWS else 0.99


def _regularizer(l1: float, l2: float):
    import keras

    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


def _body_input(num, cat):
    import keras

    parts = [p for p in (num, cat) if p is not None]
    if not parts:
        raise ValueError("no usable feature")
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)


def _head(x, spec, num_outputs: int, reg=None, prior=None):
    import keras

    if spec.task == "regression":
        z = keras.layers.Dense(1, kernel_regularizer=reg, name="z")(x)
        return keras.layers.Rescaling(scale=spec.target_std, offset=spec.target_mean, name="prediction")(z)
    bias = "zeros"
    if prior is not None:  # start at the class frequencies: calibrated and unbiased from step one
        bias = keras.initializers.Constant(np.log(np.clip(np.asarray(prior, float), 1e-6, 1)).tolist())
    return keras.layers.Dense(num_outputs, activation="softmax", kernel_regularizer=reg, bias_initializer=bias, name="probabilities")(x)


@MODELS.register("linear", family="table")
def linear(spec, num_outputs: int, l1: float = 0.0, l2: float = 0.0, prior=None, **_):
    """Linear / logistic / softmax regression on the prepared features (L1/L2 with l1=, l2=)."""
    import keras

    from kiln.tasks.table.features import build_features

    inputs, num, cat = build_features(spec)
    out = _head(_body_input(num, cat), spec, num_outputs, _regularizer(l1, l2), prior)
    return keras.Model(inputs, out, name="linear")


@MODELS.register("dnn", family="table")
def dnn(spec, num_outputs: int, units=(256, 128), batchnorm: bool = True, activation: str = "relu", dropout: float = 0.1,
        l1: float = 0.0, l2: float = 0.0, initializer: str = "he_normal", prior=None, **_):
    """Dense -> BatchNorm -> activation -> Dropout blocks (units=, dropout=, activation=)."""
    import keras

    from kiln.tasks.table.features import build_features

    inputs, num, cat = build_features(spec)
    x, reg = _body_input(num, cat), _regularizer(l1, l2)
    for i, u in enumerate(units):
        x = keras.layers.Dense(u, kernel_regularizer=reg, kernel_initializer=initializer, use_bias=not batchnorm, name=f"dense_{i}")(x)
        if batchnorm:
            x = keras.layers.BatchNormalization(momentum=bn_momentum(spec), name=f"bn_{i}")(x)
        x = keras.layers.Activation(activation, name=f"act_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    return keras.Model(inputs, _head(x, spec, num_outputs, reg, prior), name="dnn")


@MODELS.register("resnet_plr", family="table")
def resnet_plr(spec, num_outputs: int, width: int = 128, blocks: int = 2, dropout: float = 0.1, frequencies: int = 16,
               embed_dim: int = 8, sigma: float = 0.1, l1: float = 0.0, l2: float = 0.0, prior=None, **_):
    """ResNet-MLP over periodic (PLR) numeric embeddings (Gorishniy et al. 2021, 2022)."""
    import keras

    from kiln.tasks.table.features import build_features
    from kiln.tasks.table.layers import PeriodicEmbedding

    inputs, num, cat = build_features(spec)
    if num is not None:
        num = PeriodicEmbedding(frequencies, embed_dim, sigma, name="plr")(num)
    reg = _regularizer(l1, l2)
    x = keras.layers.Dense(width, kernel_regularizer=reg, name="stem")(_body_input(num, cat))
    for i in range(blocks):
        h = keras.layers.BatchNormalization(momentum=bn_momentum(spec), name=f"block{i}_bn")(x)
        h = keras.layers.Dense(2 * width, activation="relu", kernel_regularizer=reg, name=f"block{i}_dense1")(h)
        h = keras.layers.Dropout(dropout, name=f"block{i}_dropout1")(h)
        h = keras.layers.Dense(width, kernel_regularizer=reg, name=f"block{i}_dense2")(h)
        h = keras.layers.Dropout(dropout, name=f"block{i}_dropout2")(h)
        x = keras.layers.Add(name=f"block{i}_add")([x, h])
    x = keras.layers.BatchNormalization(momentum=bn_momentum(spec), name="head_bn")(x)
    x = keras.layers.Activation("relu", name="head_act")(x)
    return keras.Model(inputs, _head(x, spec, num_outputs, reg, prior), name="resnet_plr")


@MODELS.register("tabm", family="table")
def tabm(spec, num_outputs: int, ensemble_size: int = 16, width: int = 128, blocks: int = 2, dropout: float = 0.1, frequencies: int = 16,
         embed_dim: int = 8, sigma: float = 0.1, l1: float = 0.0, l2: float = 0.0, prior=None, **_):
    """TabM-mini: k MLPs sharing their weights in one model, over PLR numeric embeddings (kiln/tasks/table/tabm.py)."""
    from kiln.tasks.table.tabm import build_tabm

    return build_tabm(spec, num_outputs, ensemble_size, width, blocks, dropout, frequencies, embed_dim, sigma, l1, l2, prior)


def auto_model(n_train: int) -> str:
    """model=auto without the data to cross-validate (kiln/tasks/table/choose.py decides with it): by size alone."""
    from kiln.tasks.table.choose import MIN_CV_ROWS, NETWORK_ROWS, SMALL_NETWORK

    return "linear" if n_train < MIN_CV_ROWS else ("resnet_plr" if n_train >= NETWORK_ROWS else SMALL_NETWORK)


__all__ = ["MODELS", "auto_model", "bn_momentum", "dnn", "linear", "resnet_plr", "tabm"]
