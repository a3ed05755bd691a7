"""From raw model inputs (one per column) to feature tensors, inside the model.

`build_features(spec)` returns the Keras inputs and two blocks: `numbers` (N, F) of scaled numeric
and date features, missing indicators included, and `categories` (N, C) of one-hot and embedded
categories. Every model builds its body on these, so every model takes the same raw rows.
"""

from __future__ import annotations

import keras

from kiln.tasks.table.layers import DateParts, Impute, VocabLookup
from kiln.tasks.table.spec import TableSpec


def build_inputs(spec: TableSpec) -> dict:
    return {f.input: keras.Input(shape=(1,), name=f.input, dtype="string" if f.encoding == "category" else "float32")
            for f in spec.used}


def build_features(spec: TableSpec, inputs: dict | None = None):
    """(inputs, numbers or None, categories or None)."""
    inputs = inputs or build_inputs(spec)
    numbers, indicators, categories = [], [], []
    for f in spec.used:
        x = inputs[f.input]
        if f.encoding in ("numeric", "datetime"):
            filled = Impute(f.fill, name=f"impute_{f.input}")(x)  # (N, 2)
            value, missing = filled[:, :1], filled[:, 1:]
            if f.encoding == "numeric":
                numbers.append(keras.layers.Normalization(mean=f.mean, variance=f.std ** 2, name=f"scale_{f.input}")(value))
            else:
                numbers.append(DateParts(f.mean, f.std, f.year_mean, f.year_std, name=f"date_{f.input}")(value))
            if f.missing_indicator:
                indicators.append(missing)
        elif f.one_hot:
            categories.append(VocabLookup(f.vocabulary, one_hot=True, name=f"onehot_{f.input}")(x))
        else:
            ids = VocabLookup(f.vocabulary, one_hot=False, name=f"lookup_{f.input}")(x)
            emb = keras.layers.Embedding(len(f.vocabulary) + 1, f.embed_dim, name=f"embed_{f.input}")(ids)
            categories.append(keras.layers.Flatten(name=f"flat_{f.input}")(emb))
    num = _cat(numbers, "numbers")
    cat = _cat(categories + indicators, "categories")
    return inputs, num, cat


def _cat(parts: list, name: str):
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name=name)(parts)


__all__ = ["build_features", "build_inputs"]
