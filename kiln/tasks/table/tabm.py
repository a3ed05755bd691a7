"""`tabm`: a parameter-efficient ensemble of MLPs in one model (TabM-mini, Gorishniy et al., "TabM: Advancing
Tabular Deep Learning with Parameter-Efficient Ensembling", 2024), over the PLR numeric embeddings.

    features (N, D) -> MemberScale: k copies, each scaled by its own random +-1 vector   (N, k, D)
                    -> shared Dense -> ReLU -> Dropout, `blocks` times                  (N, k, W)
                    -> MemberDense: one linear head per member                         (N, k, out)
                    -> softmax per member (classes) or the target's own units (regression)

The k members share every weight but the input scaling and the head, so the model costs about one MLP of
k-fold batch. Inference (predict, evaluate, every export) returns the mean of the members' outputs: (N, out)
probabilities or values, like every other table model. Training returns the (N, k, out) member outputs and
`MemberMean.compute_loss` averages the compiled loss over the members, each member scored on its own
prediction (the paper's training: the members stay diverse, the mean is the ensemble's prediction); the
train metrics are the mean prediction's.
"""

from __future__ import annotations

import keras
from keras import ops


def _signs(shape, dtype=None):
    """Random +-1 (TabM-mini's initialisation of the first adapter): each member sees the features differently."""
    return ops.where(keras.random.uniform(shape, 0.0, 1.0) < 0.5, -1.0, 1.0)


@keras.saving.register_keras_serializable("kiln_table")
class SmoothClip(keras.layers.Layer):
    """x / sqrt(1 + (x / bound)^2): RealMLP's smooth clipping of scaled numbers (outliers pulled in towards +-bound)."""

    def __init__(self, bound: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        self.bound = float(bound)

    def call(self, x):
        return x / ops.sqrt(1.0 + ops.square(x / self.bound))

    def get_config(self):
        return {**super().get_config(), "bound": self.bound}


@keras.saving.register_keras_serializable("kiln_table")
class MemberScale(keras.layers.Layer):
    """(N, D) -> (N, k, D): k copies of the features, copy i multiplied elementwise by a trained vector r_i."""

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        self.k = int(k)

    def build(self, input_shape):
        self.r = self.add_weight(shape=(self.k, int(input_shape[-1])), initializer=_signs, name="r")

    def call(self, x):
        return ops.expand_dims(x, 1) * self.r  # (N, 1, D) * (k, D)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.k, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "k": self.k}


@keras.saving.register_keras_serializable("kiln_table")
class MemberDense(keras.layers.Layer):
    """(N, k, H) -> (N, k, units): a separate Dense per member (weights (k, H, units), bias (k, units))."""

    def __init__(self, units: int, bias_init=None, kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.bias_init = None if bias_init is None else [float(b) for b in bias_init]
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        k, h = int(input_shape[1]), int(input_shape[2])
        self.w = self.add_weight(shape=(k, h, self.units), initializer="glorot_uniform", regularizer=self.kernel_regularizer, name="w")
        bias = "zeros" if self.bias_init is None else keras.initializers.Constant([self.bias_init] * k)
        self.b = self.add_weight(shape=(k, self.units), initializer=bias, name="b")

    def call(self, x):
        return ops.einsum("nkh,khu->nku", x, self.w) + self.b

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "bias_init": self.bias_init,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}


@keras.saving.register_keras_serializable("kiln_table")
class MemberMean(keras.Model):
    """A body whose output is (N, k, out) member outputs -> the members' mean (N, out); trained on each member's loss."""

    def __init__(self, body, **kwargs):
        super().__init__(**kwargs)
        self.body = body
        if body.built:
            self.built = True

    def call(self, inputs, training=None):
        z = self.body(inputs, training=training)  # (N, k, out)
        return z if training else ops.mean(z, axis=1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not (training and y_pred is not None and len(y_pred.shape) == 3 and self._compile_loss is not None):
            return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        k = int(y_pred.shape[1])
        flat = ops.reshape(y_pred, (-1, int(y_pred.shape[2])))  # (N * k, out): row n's members side by side
        y_rep = ops.repeat(y, k, axis=0)  # row n's target k times, in the same order
        w_rep = None if sample_weight is None else ops.repeat(sample_weight, k, axis=0)
        loss = self._compile_loss(y_rep, flat, w_rep)  # the members' mean loss
        for extra in self.losses:
            loss = loss + self._aggregate_additional_loss(extra)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if y_pred is not None and len(y_pred.shape) == 3:
            y_pred = ops.mean(y_pred, axis=1)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "body": keras.saving.serialize_keras_object(self.body)}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config.pop("body")), **config)


def build_tabm(spec, num_outputs: int, k: int = 16, width: int = 256, blocks: int = 2, dropout: float = 0.1,
               frequencies: int = 16, embed_dim: int = 8, sigma: float = 0.1, l1: float = 0.0, l2: float = 0.0, prior=None,
               embed: bool = True, clip: bool = False):
    """The `tabm` model (see the module docstring); registered in models.py."""
    import numpy as np

    from kiln.tasks.table.features import build_features
    from kiln.tasks.table.layers import PeriodicEmbedding
    from kiln.tasks.table.models import _body_input, _regularizer

    inputs, num, cat = build_features(spec)
    if num is not None and clip:
        num = SmoothClip(3.0, name="smooth_clip")(num)
    if num is not None and embed:
        num = PeriodicEmbedding(frequencies, embed_dim, sigma, name="plr")(num)
    reg = _regularizer(l1, l2)
    x = MemberScale(k, name="members")(_body_input(num, cat))  # (N, k, D)
    for i in range(blocks):
        x = keras.layers.Dense(width, activation="relu", kernel_regularizer=reg, name=f"block{i}_dense")(x)  # (N, k, W)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"block{i}_dropout")(x)
    if spec.task == "regression":
        z = MemberDense(1, kernel_regularizer=reg, name="heads")(x)
        z = keras.layers.Rescaling(scale=spec.target_std, offset=spec.target_mean, name="prediction")(z)  # (N, k, 1)
    else:
        bias = None if prior is None else np.log(np.clip(np.asarray(prior, float), 1e-6, 1)).tolist()
        z = MemberDense(num_outputs, bias_init=bias, kernel_regularizer=reg, name="heads")(x)
        z = keras.layers.Softmax(axis=-1, name="probabilities")(z)  # (N, k, K)
    return MemberMean(keras.Model(inputs, z, name="tabm_body"), name="tabm")


__all__ = ["MemberDense", "MemberMean", "MemberScale", "SmoothClip", "build_tabm"]
