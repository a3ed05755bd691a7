"""Keras pieces of an anomaly model: the per-element reconstruction error, the loss that trains on it and the
variational autoencoder with its own train_step (KL divergence in keras.ops). Registered for safe-mode loading."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable("kiln_anomaly")
class ReconstructionError(keras.layers.Layer):
    """[target (N, ...), reconstruction (N, ...)] -> per-element error (N, D), flattened: squared or absolute, times a
    non-trainable per-element `scale` (ones while training; `set_scale` after fitting: 1 / each element's mean error on
    normal training rows, so a feature that is always hard to reconstruct does not drown the others)."""

    def __init__(self, error: str = "squared", **kwargs):
        super().__init__(**kwargs)
        self.error = error

    def build(self, input_shape):
        n = 1
        for d in input_shape[0][1:]:
            n *= int(d)
        self.scale = self.add_weight(shape=(n,), initializer="ones", trainable=False, name="scale")

    def call(self, inputs):
        target, recon = inputs
        d = ops.cast(recon, "float32") - ops.cast(target, "float32")
        e = ops.square(d) if self.error == "squared" else ops.abs(d)
        if len(e.shape) != 2:
            n = 1
            for k in e.shape[1:]:
                n *= int(k)
            e = ops.reshape(e, (-1, n))
        return e * self.scale

    def compute_output_shape(self, input_shape):
        n = 1
        for d in input_shape[0][1:]:
            n *= int(d)
        return (input_shape[0][0], n)

    def get_config(self):
        return {**super().get_config(), "error": self.error}


def error_layer(model) -> ReconstructionError:
    """The ReconstructionError of an anomaly model (a Functional autoencoder's `error` layer, a VAE's `err`)."""
    return model.err if isinstance(model, VAE) else model.get_layer("error")


@keras.saving.register_keras_serializable("kiln_anomaly")
class Standardize(keras.layers.Layer):
    """(N, ..., C) -> (x - mean) / std per channel, with the training split's constants (no variables: every
    export runtime sees plain constants)."""

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]

    def call(self, x):
        return (ops.cast(x, "float32") - ops.convert_to_tensor(self.mean, "float32")) / ops.convert_to_tensor(self.std, "float32")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable("kiln_anomaly")
class MeanError(keras.losses.Loss):
    """The model's output is already the error: the loss is its mean (y_true is a placeholder)."""

    def __init__(self, name: str = "mean_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return ops.mean(y_pred, axis=-1)


@keras.saving.register_keras_serializable("kiln_anomaly")
class VAE(keras.Model):
    """features (raw inputs -> (N, D) scaled features), encoder ((N, D) -> [mean, log variance] of (N, Z)),
    decoder ((N, Z) -> (N, D)). Called, it returns the per-feature error of the reconstruction from the mean
    (deterministic, what scoring and exports use); trained, it samples z and adds `beta` x the KL divergence."""

    def __init__(self, features, encoder, decoder, beta: float = 1.0, error: str = "squared", noise: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.features, self.encoder, self.decoder = features, encoder, decoder
        self.beta, self.error, self.noise = float(beta), error, float(noise)
        self.err = ReconstructionError(error, name="error")
        d = int(features.output.shape[-1])
        self.err.build([(None, d), (None, d)])
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.seed = keras.random.SeedGenerator(0)
        self.built = True  # its parts are built Functional models; nothing waits for a first call

    def call(self, inputs, training=False):
        f = self.features(inputs, training=training)
        mean, _ = self.encoder(f, training=training)
        return self.err([f, self.decoder(mean, training=training)])

    def _vae_loss(self, x, training: bool):
        f = self.features(x, training=training)
        noisy = f + self.noise * keras.random.normal(ops.shape(f), seed=self.seed) if (training and self.noise) else f
        mean, logvar = self.encoder(noisy, training=training)
        z = mean + ops.exp(0.5 * logvar) * keras.random.normal(ops.shape(mean), seed=self.seed)
        rec = ops.mean(self.err([f, self.decoder(z, training=training)]))
        kl = -0.5 * ops.mean(ops.sum(1.0 + logvar - ops.square(mean) - ops.exp(logvar), axis=-1)) / float(f.shape[-1])
        return rec + self.beta * kl, kl

    def train_step(self, data):
        import tensorflow as tf

        x = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            loss, kl = self._vae_loss(x, True)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        return self._track(loss, kl)

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        return self._track(*self._vae_loss(x, False))

    def _track(self, loss, kl):
        self.loss_tracker.update_state(loss)
        self.kl_tracker.update_state(kl)
        return {"loss": self.loss_tracker.result(), "kl": self.kl_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker, self.kl_tracker]

    def get_config(self):
        s = keras.saving.serialize_keras_object
        return {**super().get_config(), "features": s(self.features), "encoder": s(self.encoder), "decoder": s(self.decoder),
                "beta": self.beta, "error": self.error, "noise": self.noise}

    @classmethod
    def from_config(cls, config):
        d = keras.saving.deserialize_keras_object
        config = dict(config)
        parts = {k: d(config.pop(k)) for k in ("features", "encoder", "decoder")}
        return cls(**parts, **config)


__all__ = ["MeanError", "ReconstructionError", "Standardize", "VAE", "error_layer"]
