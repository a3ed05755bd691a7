"""Layers and the loss every series model shares, in keras.ops (serialisable, so model.keras loads in safe mode).

    x = Scale(mean, std)(history)                  # the training stretch's scalers, inside the model
    x, level = CenterTarget(k, instance=True)(x)   # the target channel minus its last-k mean, over the window's std
    ... body ...                                   # (N, H * Q)
    forecast = Forecast(H, Q, mean0, std0)([out, level])   # back to the target's own units: (N, H) or (N, H, Q)
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kiln_series")
class Scale(keras.layers.Layer):
    """(x - mean) / std per channel, with the training stretch's figures as graph constants (a keras
    Normalization layer's captured statistics become extra graph inputs in tf2onnx's ONNX export)."""

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]

    def call(self, x):
        return (x - ops.convert_to_tensor(self.mean, x.dtype)) / ops.convert_to_tensor(self.std, x.dtype)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="kiln_series")
class CenterTarget(keras.layers.Layer):
    """Subtract the mean of the last `k` scaled target values from the target channel: the body sees shapes,
    not levels, so a trending series outside the training range is forecast from where it is.

    instance=True also divides it by the window's own std (RevIN-style instance normalisation; Kim et al.,
    ICLR 2022): with one global std a smooth series' hour-to-hour moves are tiny beside its yearly range, so
    the body would have to be precise to 1/100 of its output scale; per window they are O(1). The level
    output is then (N, 2): the level and that spread, which `Forecast` multiplies back."""

    EPS = 1e-4  # on the variance, in global-std units: a flat window is divided by 0.01, not by zero

    def __init__(self, k: int, instance: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.k, self.instance = int(k), bool(instance)

    def call(self, x):  # x: (N, L, C)
        level = ops.mean(x[:, -self.k:, 0], axis=1, keepdims=True)  # (N, 1)
        target = x[:, :, :1] - level[:, :, None]
        if self.instance:
            spread = ops.sqrt(ops.var(x[:, :, 0], axis=1, keepdims=True) + self.EPS)  # (N, 1)
            target = target / spread[:, :, None]
            level = ops.concatenate([level, spread], axis=-1)
        return ops.concatenate([target, x[:, :, 1:]], axis=-1), level

    def compute_output_shape(self, shape):
        return shape, (shape[0], 2 if self.instance else 1)

    def get_config(self):
        return {**super().get_config(), "k": self.k, "instance": self.instance}


@keras.saving.register_keras_serializable(package="kiln_series")
class SeasonalNaive(keras.layers.Layer):
    """(N, L, C) scaled window -> (N, H): the seasonal-naive forecast (the last `season` target values
    repeated over the horizon), computed inside the model so every export carries it. The body then
    predicts only the correction to it: on a smooth seasonal series that correction is a small fraction
    of the window's range, which a network learns far more precisely than the whole curve."""

    def __init__(self, season: int, horizon: int, **kwargs):
        super().__init__(**kwargs)
        self.season, self.horizon = int(season), int(horizon)

    def call(self, x):
        L = x.shape[1]
        idx = [L - self.season + h % self.season for h in range(self.horizon)]
        return ops.take(x[:, :, 0], ops.convert_to_tensor(idx, "int32"), axis=1)

    def compute_output_shape(self, shape):
        return (shape[0], self.horizon)

    def get_config(self):
        return {**super().get_config(), "season": self.season, "horizon": self.horizon}


@keras.saving.register_keras_serializable(package="kiln_series")
class Forecast(keras.layers.Layer):
    """(N, H*Q) body output + (N, 1) level -> the forecast in the target's units: (N, H), or (N, H, Q) with quantiles."""

    def __init__(self, horizon: int, quantiles: int, mean: float, std: float, **kwargs):
        super().__init__(**kwargs)
        self.horizon, self.quantiles, self.mean, self.std = int(horizon), int(quantiles), float(mean), float(std)

    def call(self, inputs):
        # level: (N, 1), or (N, 2) level and spread from CenterTarget(instance=True); an optional third input,
        # the (N, H) seasonal-naive forecast, is what the body's output corrects (instead of the level)
        out, level = inputs[0], inputs[1]
        if level.shape[-1] == 2:
            spread, level = level[:, 1:], level[:, :1]
            out = out * spread  # (N, H*Q) * (N, 1), before the reshape
        base = inputs[2] if len(inputs) > 2 else level  # (N, H) or (N, 1)
        if self.quantiles:
            out = ops.reshape(out, (-1, self.horizon, self.quantiles)) + base[:, :, None]
        else:
            out = out + base
        return out * self.std + self.mean

    def compute_output_shape(self, shapes):
        return (shapes[0][0], self.horizon, self.quantiles) if self.quantiles else (shapes[0][0], self.horizon)

    def get_config(self):
        return {**super().get_config(), "horizon": self.horizon, "quantiles": self.quantiles, "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="kiln_series")
class UpdateGateBias(keras.initializers.Initializer):
    """GRU bias with the update gate's part (the first third of the last axis, Keras' z, r, h order) at
    `value`, the rest 0: the GRU twin of the LSTM's unit_forget_bias (Jozefowicz et al., 2015). With zero
    biases the GRU on Seattle hourly sat on a plateau from the first epoch (train loss 0.0158 -> 0.0155
    over 17 epochs, val no better than seasonal naive, best val epoch the 2nd) while the LSTM beside it
    learned; with z starting at sigmoid(2) (input and recurrent bias both 1) each step keeps more of its state; the probe reached
    val loss 0.0075 after one epoch (the LSTM: 0.0075 after two). Clipping or a lower or higher lr did not move it."""

    def __init__(self, value: float = 1.0):
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        third = shape[-1] // 3
        z = ops.concatenate([ops.full((*shape[:-1], third), self.value), ops.zeros((*shape[:-1], shape[-1] - third))], axis=-1)
        return ops.cast(z, dtype or "float32")

    def get_config(self):
        return {"value": self.value}


@keras.saving.register_keras_serializable(package="kiln_series")
class Pinball(keras.losses.Loss):
    """Mean pinball (quantile) loss of (N, H, Q) forecasts against (N, H) actuals, divided by `scale` so its
    size does not depend on the target's units."""

    def __init__(self, quantiles, scale: float = 1.0, name: str = "pinball", **kwargs):
        super().__init__(name=name, **kwargs)
        self.quantiles, self.scale = [float(q) for q in quantiles], float(scale)

    def call(self, y_true, y_pred):
        q = ops.convert_to_tensor(self.quantiles, dtype=y_pred.dtype)
        err = (ops.expand_dims(ops.cast(y_true, y_pred.dtype), -1) - y_pred) / self.scale
        return ops.mean(ops.maximum(q * err, (q - 1.0) * err), axis=(-2, -1))

    def get_config(self):
        return {"quantiles": self.quantiles, "scale": self.scale, "name": self.name}


@keras.saving.register_keras_serializable(package="kiln_series")
class ScaledMAE(keras.losses.Loss):
    """Mean absolute error over the horizon divided by `scale` (the training stretch's std)."""

    def __init__(self, scale: float = 1.0, name: str = "scaled_mae", **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale = float(scale)

    def call(self, y_true, y_pred):
        return ops.mean(ops.abs(ops.cast(y_true, y_pred.dtype) - y_pred), axis=-1) / self.scale

    def get_config(self):
        return {"scale": self.scale, "name": self.name}


@keras.saving.register_keras_serializable(package="kiln_series")
class MedianMAE(keras.metrics.MeanMetricWrapper):
    """MAE of the median (middle quantile) forecast, or of the point forecast: the metric the history shows."""

    def __init__(self, middle: int | None = None, name: str = "mae", dtype=None):
        self.middle = middle

        def fn(y_true, y_pred):
            p = y_pred if middle is None else y_pred[..., middle]
            return ops.mean(ops.abs(ops.cast(y_true, p.dtype) - p), axis=-1)

        super().__init__(fn, name=name, dtype=dtype)

    def get_config(self):
        return {"middle": self.middle, "name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="kiln_series")
class LinearForecast(keras.layers.Layer):
    """A fixed linear map from the last `p` raw target values (oldest first) to `horizon` steps: a classical
    forecaster computed inside the model (an autoregression unrolled over the horizon, or seasonal naive).
    Its weights are set once from the fit and never trained."""

    def __init__(self, p: int, horizon: int, **kwargs):
        super().__init__(**kwargs)
        self.p, self.horizon = int(p), int(horizon)
        self.kernel = self.add_weight(shape=(self.p, self.horizon), initializer="zeros", trainable=False, name="kernel")
        self.bias = self.add_weight(shape=(self.horizon,), initializer="zeros", trainable=False, name="bias")

    def call(self, x):  # x: (N, L, C) raw values
        return ops.matmul(x[:, x.shape[1] - self.p:, 0], ops.cast(self.kernel, x.dtype)) + ops.cast(self.bias, x.dtype)

    def compute_output_shape(self, shape):
        return (shape[0], self.horizon)

    def get_config(self):
        return {**super().get_config(), "p": self.p, "horizon": self.horizon}


__all__ = ["CenterTarget", "Forecast", "LinearForecast", "MedianMAE", "Pinball", "Scale", "ScaledMAE", "SeasonalNaive", "UpdateGateBias"]
