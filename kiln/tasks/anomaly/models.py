"""Anomaly models: `dense` (tables, flattened windows or images), `conv1d` (series windows), `conv2d` (images) and `vae`, each on the same
in-model preparation (the table's column layers, or a series' per-channel scaling).

Every builder takes `(spec, **keys)` and returns an uncompiled keras.Model whose output is the per-feature (or
per-step x channel) reconstruction error (N, D); the task reduces it to a score and compares it with the threshold.
`denoise=` adds Gaussian noise to the scaled inputs while training, the error is against the clean ones.
"""

from __future__ import annotations

from kiln.tasks.base import ModelRegistry

MODELS = ModelRegistry("anomaly")


def features(spec):
    """(inputs, scaled features: (N, D) for a table, (N, W, C) for series windows)."""
    import keras

    if spec.kind == "table":
        from kiln.tasks.table.features import build_features

        inputs, num, cat = build_features(spec.table_spec)
        parts = [p for p in (num, cat) if p is not None]
        f = keras.layers.Concatenate(name="features")(parts) if len(parts) > 1 else keras.layers.Identity(name="features")(parts[0])
        return inputs, f
    if spec.kind == "image":
        inp = keras.Input((spec.size, spec.size, spec.channels), name="image", dtype="uint8")
        return inp, keras.layers.Rescaling(1 / 255, name="scale")(inp)
    inp = keras.Input((spec.window, len(spec.columns)), name="window", dtype="float32")
    from kiln.tasks.anomaly.layers import Standardize

    f = Standardize(spec.mean, spec.std, name="scale")(inp)
    return inp, f


def _latent(d: int, latent) -> int:
    return int(min(16, max(2, d // 4))) if latent == "auto" else int(latent)


def _units(d: int, units) -> list[int]:
    return [int(min(128, max(32, 2 * d))), int(min(64, max(16, d)))] if units == "auto" else [int(u) for u in units]


@MODELS.register("dense", family="anomaly")
def dense(spec, units="auto", latent="auto", denoise: float = 0.0, dropout: float = 0.0, **_):
    """Dense encoder -> bottleneck (latent=) -> mirrored decoder, on the flattened scaled features."""
    import keras

    from kiln.tasks.anomaly.layers import ReconstructionError

    inputs, f = features(spec)
    flat = keras.layers.Flatten(name="flat")(f) if len(f.shape) > 2 else f
    d = int(flat.shape[-1])
    x = keras.layers.GaussianNoise(denoise, name="denoise")(flat) if denoise else flat
    hidden = _units(d, units)
    for i, u in enumerate(hidden):
        x = keras.layers.Dense(u, activation="elu", name=f"enc_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"enc_drop_{i}")(x)
    x = keras.layers.Dense(_latent(d, latent), name="bottleneck")(x)
    for i, u in enumerate(reversed(hidden)):
        x = keras.layers.Dense(u, activation="elu", name=f"dec_{i}")(x)
    recon = keras.layers.Dense(d, name="reconstruction")(x)
    return keras.Model(inputs, ReconstructionError(spec.error, name="error")([flat, recon]), name="dense_autoencoder")


@MODELS.register("conv1d", family="anomaly")
def conv1d(spec, width: int = 32, latent="auto", denoise: float = 0.0, **_):
    """Series windows: two strided Conv1D (width=, 2 x width) -> bottleneck -> UpSampling1D + Conv1D back to the window."""
    import keras

    from kiln.tasks.anomaly.layers import ReconstructionError

    if spec.kind != "series":
        raise ValueError("conv1d reads series windows (pass time=)")
    inputs, f = features(spec)
    w, c = spec.window, len(spec.columns)
    pad = (-w) % 4
    x = keras.layers.GaussianNoise(denoise, name="denoise")(f) if denoise else f
    x = keras.layers.ZeroPadding1D((0, pad), name="pad")(x) if pad else x
    x = keras.layers.Conv1D(width, 5, strides=2, padding="same", activation="relu", name="enc_0")(x)
    x = keras.layers.Conv1D(2 * width, 5, strides=2, padding="same", activation="relu", name="enc_1")(x)
    x = keras.layers.Conv1D(_latent(c * 4, latent), 3, padding="same", name="bottleneck")(x)
    x = keras.layers.UpSampling1D(2, name="up_0")(x)
    x = keras.layers.Conv1D(2 * width, 5, padding="same", activation="relu", name="dec_0")(x)
    x = keras.layers.UpSampling1D(2, name="up_1")(x)
    x = keras.layers.Conv1D(width, 5, padding="same", activation="relu", name="dec_1")(x)
    x = keras.layers.Conv1D(c, 3, padding="same", name="reconstruction")(x)
    recon = keras.layers.Cropping1D((0, pad), name="crop")(x) if pad else x
    return keras.Model(inputs, ReconstructionError(spec.error, name="error")([f, recon]), name="conv1d_autoencoder")


@MODELS.register("conv2d", family="anomaly")
def conv2d(spec, width: int = 32, latent="auto", denoise: float = 0.0, **_):
    """Images: two strided 3x3 Conv2D (width=, 2 x width) -> 1x1 bottleneck -> two strided Conv2DTranspose back, sigmoid pixels."""
    import keras

    from kiln.tasks.anomaly.layers import ReconstructionError

    if spec.kind != "image":
        raise ValueError("conv2d reads images (pass an image folder)")
    inputs, f = features(spec)
    x = keras.layers.GaussianNoise(denoise, name="denoise")(f) if denoise else f
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name="enc_0")(x)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu", name="enc_1")(x)
    x = keras.layers.Conv2D(8 if latent == "auto" else int(latent), 1, name="bottleneck")(x)
    x = keras.layers.Conv2DTranspose(2 * width, 3, strides=2, padding="same", activation="relu", name="dec_0")(x)
    x = keras.layers.Conv2DTranspose(width, 3, strides=2, padding="same", activation="relu", name="dec_1")(x)
    recon = keras.layers.Conv2D(spec.channels, 3, padding="same", activation="sigmoid", name="reconstruction")(x)
    return keras.Model(inputs, ReconstructionError(spec.error, name="error")([f, recon]), name="conv2d_autoencoder")


@MODELS.register("vae", family="anomaly")
def vae(spec, units="auto", latent="auto", denoise: float = 0.0, beta: float = 1.0, **_):
    """Variational autoencoder (own train_step, KL in keras.ops): Dense encoder to a Gaussian latent, Dense decoder."""
    import keras

    from kiln.tasks.anomaly.layers import VAE

    inputs, f = features(spec)
    flat = keras.layers.Flatten(name="flat")(f) if len(f.shape) > 2 else f
    d = int(flat.shape[-1])
    z, hidden = _latent(d, latent), _units(d, units)
    feats = keras.Model(inputs, flat, name="features")
    e_in = keras.Input((d,), name="f")
    x = e_in
    for i, u in enumerate(hidden):
        x = keras.layers.Dense(u, activation="elu", name=f"enc_{i}")(x)
    encoder = keras.Model(e_in, [keras.layers.Dense(z, name="z_mean")(x), keras.layers.Dense(z, name="z_logvar")(x)], name="encoder")
    d_in = keras.Input((z,), name="z")
    x = d_in
    for i, u in enumerate(reversed(hidden)):
        x = keras.layers.Dense(u, activation="elu", name=f"dec_{i}")(x)
    decoder = keras.Model(d_in, keras.layers.Dense(d, name="reconstruction")(x), name="decoder")
    return VAE(feats, encoder, decoder, beta=beta, error=spec.error, noise=denoise, name="vae")


def feature_model(model):
    """raw inputs -> the flat scaled features the autoencoder reconstructs (what the baselines score too)."""
    import keras

    if hasattr(model, "features") and isinstance(model.features, keras.Model):
        return model.features
    layer = model.get_layer("features") if any(l.name == "features" for l in model.layers) else model.get_layer("scale")
    out = layer.output
    if len(out.shape) > 2:
        out = keras.layers.Flatten()(out)
    return keras.Model(model.inputs, out)


__all__ = ["MODELS", "conv1d", "conv2d", "dense", "feature_model", "features", "vae"]
