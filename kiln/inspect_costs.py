"""What one layer costs, by the textbook formulas kiln/inspect.py's docstring lists: parameters, MACs,
and the receptive-field step along convolution / pooling paths. kiln/inspect.py walks the graph."""

from __future__ import annotations

import math

import numpy as np

CONVENTIONS = ("1 MAC = 1 multiply + 1 add; bias, BatchNorm, activations, pooling, element-wise products and softmax "
               "count 0 MACs; receptive field and stride follow the conv/pool path")

POOL_TYPES = {"MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D"}
CONV_TYPES = {"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"}
TRANSPOSE_TYPES = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
ELEMENTWISE_TYPES = {"Normalization", "LayerScale", "PReLU", "Rescaling"}  # weights, but 0 MACs by convention
GLOBAL_TYPES = {"GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
                "GlobalMaxPooling2D", "GlobalMaxPooling3D", "Flatten"}


# ---------------------------------------------------------------- shapes and formulas

def _dims(shape) -> list:
    """A tensor shape without its batch axis."""
    return list(shape)[1:]


def _prod(values) -> int:
    return int(math.prod(int(v) for v in values))


def _tuple(value, n: int) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * n


def out_size(n: int, k: int, s: int, padding: str, d: int = 1) -> int:
    """Textbook output length of a convolution / pooling along one axis."""
    k_eff = d * (k - 1) + 1
    if padding in ("same", "causal"):
        return -(-n // s)
    return (n - k_eff) // s + 1


def _channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") != "channels_first"


def _split(dims: list, channels_last: bool) -> tuple[list, int]:
    """(spatial dims, channels) of a shape without batch."""
    return (dims[:-1], dims[-1]) if channels_last else (dims[1:], dims[0])


def _weights_count(layer) -> tuple[int, int]:
    t = sum(_prod(w.shape) for w in getattr(layer, "trainable_weights", []))  # keras.ops nodes hold none
    nt = sum(_prod(w.shape) for w in getattr(layer, "non_trainable_weights", []))
    return t, nt


def _kernel_stride(layer, n: int) -> tuple[tuple, tuple, tuple, str]:
    """(kernel, strides, dilation, padding) of a conv or pooling layer, one entry per spatial axis."""
    kind = type(layer).__name__
    if kind in POOL_TYPES:
        k = _tuple(layer.pool_size, n)
        s = _tuple(layer.strides if layer.strides is not None else layer.pool_size, n)
        return k, s, (1,) * n, layer.padding
    return _tuple(layer.kernel_size, n), _tuple(layer.strides, n), _tuple(getattr(layer, "dilation_rate", 1), n), layer.padding


def layer_cost(layer, in_shapes: list, out_shapes: list) -> dict:
    """{params (formula or None), macs, macs_known, shape_ok} for one call of a leaf layer."""
    kind = type(layer).__name__
    ins = [_dims(s) for s in in_shapes]
    outs = [_dims(s) for s in out_shapes]
    x = ins[0] if ins else []
    y = outs[0] if outs else []
    res = {"params": None, "macs": 0, "macs_known": True, "shape_ok": None}
    cl = _channels_last(layer)
    if kind in CONV_TYPES or kind in TRANSPOSE_TYPES:
        (xs, cin), (ys, cout) = _split(x, cl), _split(y, cl)
        n = len(xs)
        k, s, d, pad = _kernel_stride(layer, n)
        bias = bool(getattr(layer, "use_bias", True))
        if kind.startswith("Depthwise"):
            m = int(layer.depth_multiplier)
            res["params"] = _prod(k) * cin * m + (cin * m if bias else 0)
            res["macs"] = _prod(ys) * cin * m * _prod(k)
        elif kind.startswith("Separable"):
            m = int(layer.depth_multiplier)
            res["params"] = _prod(k) * cin * m + cin * m * cout + (cout if bias else 0)
            res["macs"] = _prod(ys) * cin * m * _prod(k) + _prod(ys) * cin * m * cout
        elif kind in TRANSPOSE_TYPES:
            res["params"] = _prod(k) * cin * cout + (cout if bias else 0)
            res["macs"] = _prod(xs) * cin * _prod(k) * cout
        else:
            groups = int(getattr(layer, "groups", 1) or 1)
            res["params"] = _prod(k) * (cin // groups) * cout + (cout if bias else 0)
            res["macs"] = _prod(ys) * cout * _prod(k) * (cin // groups)
        if kind not in TRANSPOSE_TYPES and None not in xs:
            res["shape_ok"] = [out_size(xs[i], k[i], s[i], pad, d[i]) for i in range(n)] == list(ys)
    elif kind in POOL_TYPES:
        xs, _ = _split(x, cl)
        ys, _ = _split(y, cl)
        k, s, d, pad = _kernel_stride(layer, len(xs))
        res["params"] = 0
        if None not in xs:
            res["shape_ok"] = [out_size(xs[i], k[i], s[i], pad) for i in range(len(xs))] == list(ys)
    elif kind == "Dense":
        units, fan_in = int(layer.units), int(x[-1])
        res["params"] = fan_in * units + (units if layer.use_bias else 0)
        res["macs"] = _prod(x[:-1]) * fan_in * units
    elif kind == "EinsumDense":
        res["macs"] = _einsum_macs(layer.equation, in_shapes[0], tuple(layer.kernel.shape))
    elif kind in ("BatchNormalization", "LayerNormalization") and _norm_axes_last(layer):
        axis = layer.axis[0] if isinstance(layer.axis, (list, tuple)) else layer.axis
        c = int(in_shapes[0][axis])
        scale, center = bool(layer.scale), bool(layer.center)
        res["params"] = c * (int(scale) + int(center)) + (2 * c if kind == "BatchNormalization" else 0)
    elif kind == "Embedding":
        res["params"] = int(layer.input_dim) * int(layer.output_dim)
    elif kind == "MultiHeadAttention":
        res.update(_attention_cost(layer, in_shapes, out_shapes))
    elif kind == "Matmul" and len(ins) == 2 and ins[0] and None not in y:
        res["macs"] = _prod(y) * int(ins[0][-1])  # (..., n, k) @ (..., k, m)
        res["params"] = 0
    elif kind in ELEMENTWISE_TYPES:
        pass  # element-wise scale / shift: params from Keras, 0 MACs
    elif not layer_weights(layer):
        res["params"] = 0
    else:
        res["macs_known"] = False
    return res


def layer_weights(op) -> list:
    return list(getattr(op, "weights", []) or [])


def _norm_axes_last(layer) -> bool:
    axis = layer.axis
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return len(axes) == 1


def _einsum_macs(equation: str, input_shape, kernel_shape) -> int:
    """MACs of an einsum: the product of every index's size (batch-like unknown sizes left out)."""
    lhs, _ = equation.split("->")
    a, b = lhs.split(",")
    sizes = {}
    dims = list(input_shape)
    if "..." in a:
        a = a.replace("...", "")
        dims = dims[len(dims) - len(a):]
    for letter, size in zip(a, dims):
        if size is not None:
            sizes[letter] = int(size)
    for letter, size in zip(b, kernel_shape):
        sizes[letter] = int(size)
    return _prod(sizes.values())


def _attention_cost(layer, in_shapes, out_shapes) -> dict:
    q = _dims(in_shapes[0])
    v = _dims(in_shapes[1]) if len(in_shapes) > 1 else q
    k = _dims(in_shapes[2]) if len(in_shapes) > 2 else v
    out = _dims(out_shapes[0])
    h, dk = int(layer.num_heads), int(layer.key_dim)
    dv = int(layer.value_dim or layer.key_dim)
    tq, tk, tv = _prod(q[:-1]), _prod(k[:-1]), _prod(v[:-1])
    bias = bool(layer.use_bias)
    dq, dkk, dvv, do = int(q[-1]), int(k[-1]), int(v[-1]), int(out[-1])
    params = (dq * h * dk + dkk * h * dk + dvv * h * dv + h * dv * do
              + ((2 * h * dk + h * dv + do) if bias else 0))
    macs = tq * dq * h * dk + tk * dkk * h * dk + tv * dvv * h * dv + h * tq * tk * dk + h * tq * tv * dv + tq * h * dv * do
    return {"params": None if getattr(layer, "use_gate", False) else params, "macs": macs}


# ---------------------------------------------------------------- receptive field

def _rf_step(op, states: list, in_shapes: list, out_shape) -> tuple | None:
    """(rf per axis, jump per axis) of the output, or None once the conv/pool path has ended."""
    kind = type(op).__name__
    spatial_in = [s for s in states if s is not None]
    y = _dims(out_shape)
    if kind in GLOBAL_TYPES or len(y) < 2:
        return None
    if not spatial_in:
        return None
    # merges (add, concatenate, multiply by an SE gate): the widest incoming path
    rf = tuple(max(s[0][i] for s in spatial_in) for i in range(len(spatial_in[0][0])))
    jump = tuple(max(s[1][i] for s in spatial_in) for i in range(len(spatial_in[0][1])))
    if kind in CONV_TYPES or kind in POOL_TYPES or kind in TRANSPOSE_TYPES:
        n = len(rf)
        k, s, d, _ = _kernel_stride(op, n)
        if kind in TRANSPOSE_TYPES:
            jump = tuple(j / s[i] for i, j in enumerate(jump))
            rf = tuple(r + (k[i] - 1) * jump[i] for i, r in enumerate(rf))
            return rf, jump
        rf = tuple(r + (d[i] * (k[i] - 1)) * jump[i] for i, r in enumerate(rf))
        jump = tuple(j * s[i] for i, j in enumerate(jump))
        return rf, jump
    if kind.startswith("UpSampling"):
        size = _tuple(op.size, len(rf))
        return rf, tuple(j / size[i] for i, j in enumerate(jump))
    if len(y) != len(rf) + 1:  # reshaped into tokens or vectors: no longer an image
        return None
    return rf, jump


def _show_pair(values) -> int | float | list | None:
    if values is None:
        return None
    vals = [int(v) if float(v).is_integer() else round(float(v), 3) for v in values]
    return vals[0] if len(set(vals)) == 1 else vals
