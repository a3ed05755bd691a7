"""The text models' own layers, on token ids (0 pads): Keras 3 layers written with `keras.ops` only.

keras-hub's TransformerEncoder / TokenAndPositionEmbedding would do, but keras-hub 0.32 requires
tensorflow-text, which depends on the `tensorflow` wheel rather than `tensorflow-cpu` (FACTS.md); these
are the same blocks in a few lines each. Every layer is registered, so model.keras loads in safe mode.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "kiln_text"


def _mask(ids):
    return ops.cast(ops.not_equal(ids, 0), "float32")  # (B, L): 1 on tokens, 0 on padding


@keras.saving.register_keras_serializable(package=PACKAGE)
class IdfBag(keras.layers.Layer):
    """A linear layer on the TF-IDF (or count) vector of the ids, without building that vector:
    sum over positions of idf[id] * W[id], divided by the vector's L2 norm (per occurrence), plus a bias.

    `idf` is fixed (computed on the training split, 0 for padding); W is the trainable (vocabulary, units) kernel.
    `sublinear` (bow's default) is scikit-learn's sublinear_tf + norm="l2": each term weighs idf * (1 + log tf) and
    the row is divided by that vector's L2 norm, so a word said 40 times in a long mail does not outweigh the rest;
    computed on the ids sorted per row (the k-th repeat of a term adds log(k / (k - 1)), so its repeats sum to 1 + log tf).
    `scale` multiplies the kernel's output: a token's row is updated only on the few steps it occurs, and Adam's
    steps (about lr each) would need thousands of those to reach logistic-regression sized logits.
    """

    def __init__(self, vocabulary_size: int, units: int, idf=None, l2: float = 0.0, scale: float = 10.0, sublinear: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.units, self.l2, self.scale = int(vocabulary_size), int(units), float(l2), float(scale)
        self.sublinear = bool(sublinear)
        self._idf_init = idf

    def build(self, input_shape):
        init = (keras.initializers.Constant(list(map(float, self._idf_init))) if self._idf_init is not None else "ones")
        self.idf = self.add_weight(name="idf", shape=(self.vocabulary_size,), initializer=init, trainable=False)
        self.kernel = self.add_weight(name="kernel", shape=(self.vocabulary_size, self.units), initializer="zeros",
                                      regularizer=keras.regularizers.L2(self.l2) if self.l2 else None)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, ids):
        ids = ops.cast(ids, "int32")
        if self.sublinear:
            return self._sublinear(ops.sort(ids, axis=1))
        w = ops.take(self.idf, ids, axis=0) * _mask(ids)  # (B, L)
        rows = ops.take(self.kernel, ids, axis=0)  # (B, L, U)
        norm = ops.sqrt(ops.sum(w * w, axis=1, keepdims=True) + 1e-6)  # (B, 1)
        return self.scale * ops.sum(rows * ops.expand_dims(w, -1), axis=1) / norm + self.bias

    def _sublinear(self, s):
        """s: (B, L) ids sorted per row, so a term's repeats are adjacent; k counts them (1, 2, ...)."""
        length = s.shape[1]
        pos = ops.expand_dims(ops.arange(length, dtype="int32"), 0)  # (1, L)
        first = ops.not_equal(s, ops.concatenate([ops.full_like(s[:, :1], -1), s[:, :-1]], axis=1))  # a term's first slot
        run = ops.cumsum(ops.cast(first, "int32"), axis=1) - 1  # which term (0, 1, ...) each slot belongs to
        starts = ops.sort(ops.where(first, pos, pos + length), axis=1)  # the terms' first slots, in order
        k = ops.cast(pos - ops.take_along_axis(starts, run, axis=1) + 1, "float32")  # (B, L) repeat number
        step = ops.where(k > 1, ops.log(k) - ops.log(ops.maximum(k - 1, 1.0)), 1.0)
        idf = ops.take(self.idf, s, axis=0) * _mask(s)
        last = ops.concatenate([first[:, 1:], ops.ones_like(first[:, :1])], axis=1)  # a term's last slot holds 1 + log tf
        value = idf * (1.0 + ops.log(k))
        norm = ops.sqrt(ops.sum(ops.where(last, value * value, 0.0), axis=1, keepdims=True) + 1e-6)  # (B, 1)
        rows = ops.take(self.kernel, s, axis=0)  # (B, L, U)
        return self.scale * ops.sum(rows * ops.expand_dims(idf * step, -1), axis=1) / norm + self.bias

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "units": self.units, "l2": self.l2, "scale": self.scale,
                "sublinear": self.sublinear}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedPool(keras.layers.Layer):
    """(sequence (B, L, D), ids (B, L)) -> (B, D): mean or max over the positions that hold a token."""

    def __init__(self, mode: str = "max", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, inputs):
        x, ids = inputs
        m = ops.expand_dims(_mask(ids), -1)  # (B, L, 1)
        if self.mode == "mean":
            return ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)
        return ops.max(x * m - (1.0 - m) * 1e4, axis=1) * ops.minimum(ops.sum(m, axis=1), 1.0)  # 0 for an empty text

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenAndPosition(keras.layers.Layer):
    """Token embedding plus a learned position embedding: ids (B, L) -> (B, L, D)."""

    def __init__(self, vocabulary_size: int, sequence_length: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.sequence_length, self.dim = int(vocabulary_size), int(sequence_length), int(dim)
        self.tokens = keras.layers.Embedding(self.vocabulary_size, self.dim, name="tokens")
        self.positions = keras.layers.Embedding(self.sequence_length, self.dim, name="positions")

    def build(self, input_shape):
        self.tokens.build(input_shape)
        self.positions.build((self.sequence_length,))

    def call(self, ids):
        return self.tokens(ids) + ops.expand_dims(self.positions(ops.arange(self.sequence_length)), 0)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "sequence_length": self.sequence_length,
                "dim": self.dim}


@keras.saving.register_keras_serializable(package=PACKAGE)
class EncoderBlock(keras.layers.Layer):
    """One post-norm Transformer encoder block (Vaswani et al. 2017): self-attention over the tokens
    (padding masked out), then a position-wise feed-forward, each with a residual and LayerNorm."""

    def __init__(self, dim: int, heads: int = 2, hidden: int = 128, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.heads, self.hidden, self.dropout = int(dim), int(heads), int(hidden), float(dropout)
        self.attention = keras.layers.MultiHeadAttention(self.heads, max(1, self.dim // self.heads), dropout=self.dropout,
                                                         name="attention")
        self.ffn_in = keras.layers.Dense(self.hidden, activation="relu", name="ffn_in")
        self.ffn_out = keras.layers.Dense(self.dim, name="ffn_out")
        self.norm1 = keras.layers.LayerNormalization(epsilon=1e-6, name="norm1")
        self.norm2 = keras.layers.LayerNormalization(epsilon=1e-6, name="norm2")
        self.drop = keras.layers.Dropout(self.dropout)

    def build(self, input_shape):
        x_shape, _ = input_shape
        self.attention.build(x_shape, x_shape)
        self.ffn_in.build(x_shape)
        self.ffn_out.build((*x_shape[:-1], self.hidden))
        self.norm1.build(x_shape)
        self.norm2.build(x_shape)

    def call(self, inputs, training=None):
        x, ids = inputs
        m = ops.not_equal(ids, 0)
        pair = ops.logical_and(ops.expand_dims(m, 1), ops.expand_dims(m, 2))  # (B, L, L)
        pair = ops.logical_or(pair, ops.expand_dims(ops.eye(ops.shape(ids)[1], dtype="bool"), 0))  # a padded row sees itself
        a = self.attention(x, x, attention_mask=pair, training=training)
        x = self.norm1(x + self.drop(a, training=training))
        f = self.ffn_out(self.ffn_in(x))
        return self.norm2(x + self.drop(f, training=training))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "heads": self.heads, "hidden": self.hidden, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Words(keras.layers.Layer):
    """The first `length` word ids of an n-gram id sequence: (B, L) -> (B, length), later slots 0.

    TextVectorization with ngrams=k writes a text of w words as its w 1-grams, then its w-1 2-grams, ... (k*w - k(k-1)/2
    ids before truncation to L), so the words are the first w ids and w = (ids + k(k-1)/2) // k; a truncated row (every
    slot used) holds at least (L + k(k-1)/2) // k words. A sequence model reads the words of the bag model's ids, so both
    members of an ensemble share one tokenisation (and one exported tokenizer).
    """

    def __init__(self, length: int, ngrams: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.length, self.ngrams = int(length), int(ngrams)

    def call(self, ids):
        k, full = self.ngrams, ids.shape[1]
        n = ops.sum(ops.cast(ops.not_equal(ids, 0), "int32"), axis=1, keepdims=True)  # (B, 1) ids before padding
        extra = k * (k - 1) // 2
        w = ops.where(n >= full, (full + extra) // k, (n + extra) // k)  # (B, 1) words
        head = ids[:, : self.length]
        pos = ops.expand_dims(ops.arange(ops.shape(head)[1], dtype="int32"), 0)
        return ops.where(pos < w, head, ops.zeros_like(head))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], min(self.length, input_shape[1]) if input_shape[1] is not None else self.length)

    def get_config(self):
        return {**super().get_config(), "length": self.length, "ngrams": self.ngrams}


__all__ = ["EncoderBlock", "IdfBag", "MaskedPool", "TokenAndPosition", "Words"]


@keras.saving.register_keras_serializable(package=PACKAGE)
def char_wb_split(x):
    """TextVectorization's `split` for analyzer=char_wb: (B,) lowercased strings -> ragged (B, T) character 2-5-grams
    within words, in tokenize.char_wb's order (per word: every 2-gram, then every 3-gram, ...).

    tf.strings, not keras.ops: TextVectorization runs on TensorFlow strings whatever the backend, and keras.ops has
    no string ops. Registered, so model.keras names it and loads in safe mode."""
    import tensorflow as tf

    from kiln.tasks.text.tokenize import CHAR_WIDTHS

    words = tf.strings.split(x)  # ASCII whitespace, as tokenize.WHITESPACE
    padded = tf.ragged.map_flat_values(lambda w: tf.strings.join([" ", w, " "]), words)
    chars = tf.strings.unicode_split(padded, "UTF-8", errors="replace")  # (B, W, C) code points
    grams = tf.concat([tf.strings.ngrams(chars, n, separator="") for n in CHAR_WIDTHS], axis=2)  # (B, W, G)
    return grams.merge_dims(1, 2)
