"""Vision Transformer (Dosovitskiy et al. 2021) from Keras layers, trained from scratch.

    image (B,H,W,C) raw pixels
      -> backbone: x/127.5-1 -> Conv2D(patch, stride patch) patch embedding (B, N, D)
                   + learned position embedding -> depth x pre-norm encoder block -> LayerNorm
      -> GAP over tokens (B, D) -> Dropout -> predictions

An encoder block is `x + MHA(LN(x))` then `x + MLP(LN(x))` (MLP: Dense(mlp, gelu) -> Dense(D)).
Tokens are averaged instead of a class token (as in Beyer et al. 2022, "Better plain ViT
baselines"); everything is a built-in Keras layer or op, so `model.keras` loads with safe_mode
and exports like any other model. Sizes follow DeiT: tiny, small, base.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from kiln.errors import ConfigError, received
from kiln.tasks.image.models.backbones import with_head
from kiln.tasks.image.models.registry import register_model

SIZES = {  # name: (width D, depth, heads, MLP width)
    "vit_tiny": (192, 12, 3, 768),
    "vit_small": (384, 12, 6, 1536),
    "vit_base": (768, 12, 12, 3072),
}


def auto_patch(side: int) -> int:
    """About 8x8 tokens for small images, 16-pixel patches from 128 px up (ViT-*/16 at 224 px)."""
    return int(min(16, max(2, side // 8)))


def encoder_block(x, dim: int, heads: int, mlp: int, dropout: float, name: str):
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(x)
    y = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, name=f"{name}_mha")(y, y)  # (B, N, D)
    x = layers.Add(name=f"{name}_add1")([x, y])
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(x)
    y = layers.Dense(mlp, activation="gelu", name=f"{name}_mlp1")(y)  # (B, N, mlp)
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_drop")(y)
    y = layers.Dense(dim, name=f"{name}_mlp2")(y)
    return layers.Add(name=f"{name}_add2")([x, y])


def vit_backbone(input_shape, dim: int, depth: int, heads: int, mlp: int, patch_size: int | str | None = "auto",
                 attention_dropout: float = 0.0) -> keras.Model:
    """Raw pixels (B,H,W,C) -> token features (B, N, D), as the nested "backbone" model."""
    h, w = int(input_shape[0]), int(input_shape[1])
    patch = auto_patch(min(h, w)) if patch_size in (None, "auto", 0) else int(patch_size)
    if patch < 1 or h < patch or w < patch:
        raise ConfigError(received("model", "patch_size", patch, f"it must fit the {h}x{w} images",
                                   "Use patch_size=auto or a value up to the image side"))
    gh, gw = h // patch, w // patch
    pixels = keras.Input(shape=tuple(input_shape), name="pixels")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(pixels)
    x = layers.Conv2D(dim, patch, strides=patch, name="patch_embed")(x)  # (B, H/p, W/p, D)
    tokens = layers.Reshape((gh * gw, dim), name="tokens")(x)  # (B, N, D)
    # Token positions 0..N-1 from the tokens themselves, so the embedding stays inside the graph.
    positions = ops.cumsum(ops.ones_like(tokens[:, :, 0], dtype="int32"), axis=1) - 1  # (B, N)
    x = layers.Add(name="add_position")([tokens, layers.Embedding(gh * gw, dim, name="position_embed")(positions)])
    for i in range(depth):
        x = encoder_block(x, dim, heads, mlp, attention_dropout, f"block{i + 1}")
    x = layers.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    return keras.Model(pixels, x, name="backbone")


def _make_builder(name: str, dim: int, depth: int, heads: int, mlp: int):
    def build(input_shape, num_classes, dropout: float = 0.1, patch_size: int | str = "auto"):
        backbone = vit_backbone(input_shape, dim, depth, heads, mlp, patch_size)
        return with_head(backbone, input_shape, num_classes, dropout, name)

    build.__name__ = name
    build.__doc__ = f"Vision Transformer, width {dim}, {depth} blocks, {heads} heads; trained from scratch."
    return build


for _name, (_dim, _depth, _heads, _mlp) in SIZES.items():
    register_model(_name, family="vit", default_size=224)(_make_builder(_name, _dim, _depth, _heads, _mlp))
