"""Keras layers for the preprocessing that lives inside a table model (so export and serving see it).

Numbers: `Impute` (NaN -> the training median, plus a 0/1 missing indicator), then Keras
`Normalization`. Dates arrive as days since 1970-01-01; `DateParts` turns them into a trend, the
year and cyclic month / day-of-month / day-of-week features with integer calendar arithmetic in
keras.ops (Howard Hinnant's civil_from_days), so no string parsing is needed in the graph.
`PeriodicEmbedding` is the PLR numeric embedding of Gorishniy et al. (2022).
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable("kiln_table")
class Impute(keras.layers.Layer):
    """(N, 1) float with NaN -> (N, 2): [value with NaN replaced by `fill`, 1.0 where it was missing]."""

    def __init__(self, fill: float, **kwargs):
        super().__init__(**kwargs)
        self.fill = float(fill)

    def call(self, x):
        x = ops.cast(x, "float32")
        missing = ops.isnan(x)
        return ops.concatenate([ops.where(missing, self.fill, x), ops.cast(missing, "float32")], axis=-1)

    def get_config(self):
        return {**super().get_config(), "fill": self.fill}


@keras.saving.register_keras_serializable("kiln_table")
class DateParts(keras.layers.Layer):
    """(N, 1) days since 1970-01-01 (already imputed) -> (N, 8): trend, year, month sin/cos, day-of-month
    sin/cos, day-of-week sin/cos."""

    def __init__(self, mean: float, std: float, year_mean: float, year_std: float, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std, self.year_mean, self.year_std = float(mean), float(std), float(year_mean), float(year_std)

    def call(self, days):
        days = ops.cast(days, "float32")
        z = ops.floor(days) + 719468.0  # civil_from_days, in float32 (exact for integers below 2**24)
        era = ops.floor(z / 146097.0)
        doe = z - era * 146097.0
        yoe = ops.floor((doe - ops.floor(doe / 1460.0) + ops.floor(doe / 36524.0) - ops.floor(doe / 146096.0)) / 365.0)
        doy = doe - (365.0 * yoe + ops.floor(yoe / 4.0) - ops.floor(yoe / 100.0))
        mp = ops.floor((5.0 * doy + 2.0) / 153.0)
        day = doy - ops.floor((153.0 * mp + 2.0) / 5.0) + 1.0  # 1..31
        month = ops.where(mp < 10.0, mp + 3.0, mp - 9.0)  # 1..12
        year = yoe + era * 400.0 + ops.where(month <= 2.0, 1.0, 0.0)
        dow = ops.mod(ops.floor(days) + 3.0, 7.0)  # 1970-01-01 was a Thursday: 0 = Monday
        tau = 2.0 * math.pi
        parts = [(days - self.mean) / self.std, (year - self.year_mean) / self.year_std,
                 ops.sin(tau * (month - 1.0) / 12.0), ops.cos(tau * (month - 1.0) / 12.0),
                 ops.sin(tau * (day - 1.0) / 31.0), ops.cos(tau * (day - 1.0) / 31.0),
                 ops.sin(tau * dow / 7.0), ops.cos(tau * dow / 7.0)]
        return ops.concatenate(parts, axis=-1)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std, "year_mean": self.year_mean, "year_std": self.year_std}


@keras.saving.register_keras_serializable("kiln_table")
class PeriodicEmbedding(keras.layers.Layer):
    """(N, F) scaled numbers -> (N, F * dim): per feature, ReLU(Linear([sin(2πcx), cos(2πcx)])) with
    trained frequencies c ~ N(0, sigma) (the PLR embedding)."""

    def __init__(self, frequencies: int = 16, dim: int = 16, sigma: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.frequencies, self.dim, self.sigma = int(frequencies), int(dim), float(sigma)

    def build(self, input_shape):
        f = int(input_shape[-1])
        self.c = self.add_weight(shape=(f, self.frequencies), initializer=keras.initializers.RandomNormal(stddev=self.sigma), name="c")
        self.w = self.add_weight(shape=(f, 2 * self.frequencies, self.dim), initializer="glorot_uniform", name="w")
        self.b = self.add_weight(shape=(f, self.dim), initializer="zeros", name="b")

    def call(self, x):
        v = 2.0 * math.pi * ops.expand_dims(x, -1) * self.c  # (N, F, k)
        v = ops.concatenate([ops.sin(v), ops.cos(v)], axis=-1)  # (N, F, 2k)
        h = ops.relu(ops.einsum("nfk,fkd->nfd", v, self.w) + self.b)  # (N, F, d)
        return ops.reshape(h, (-1, h.shape[1] * self.dim))

    def get_config(self):
        return {**super().get_config(), "frequencies": self.frequencies, "dim": self.dim, "sigma": self.sigma}


__all__ = ["DateParts", "Impute", "PeriodicEmbedding"]


@keras.saving.register_keras_serializable("kiln_table")
class VocabLookup(keras.layers.Layer):
    """(N, 1) strings -> one-hot (N, V + 1) or indices (N, 1), the last slot for values not in `vocabulary`.

    The same job as Keras `StringLookup`, done as one string equality against the vocabulary instead
    of a hash table: ONNX (tf2onnx) and TFLite builtins have string Equal but no portable hash table,
    so the exported graph stays self-contained in every runtime.
    """

    def __init__(self, vocabulary, one_hot: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary, self.one_hot = [str(v) for v in vocabulary], bool(one_hot)

    def call(self, x):
        import tensorflow as tf

        eq = tf.cast(tf.equal(x, tf.constant(self.vocabulary, tf.string)[None, :]), "float32")  # (N, V)
        hot = tf.concat([eq, 1.0 - tf.reduce_max(eq, axis=-1, keepdims=True)], axis=-1)  # (N, V + 1)
        return hot if self.one_hot else tf.argmax(hot, axis=-1, output_type=tf.int32)[:, None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.vocabulary) + 1) if self.one_hot else (input_shape[0], 1)

    def compute_output_spec(self, x):
        return keras.KerasTensor(self.compute_output_shape(x.shape), dtype="float32" if self.one_hot else "int32")

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "one_hot": self.one_hot}


from kiln.tasks.table.tabm import MemberDense, MemberMean, MemberScale, SmoothClip  # noqa: E402,F401  (registered for loading model.keras)
