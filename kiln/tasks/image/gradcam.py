"""Grad-CAM (Selvaraju et al., 2017): where in the image the network found evidence for a class.

For the last convolutional feature map A (h, w, k) and the class score y_c (the pre-softmax logit of
the "predictions" layer), the weight of channel k is the spatial mean of dy_c / dA_k; the heatmap is
ReLU(sum_k weight_k * A_k), scaled to [0, 1] and resized to the image.

The feature layer is found automatically: the last convolution of the model (looking inside nested
sub-models such as a "backbone"), followed forward through the layers that keep its spatial size
(BatchNorm, activation, residual add), e.g. ResNet50's `conv5_block3_out`, the cnn's last `..._act`.

    from kiln.tasks.image.gradcam import gradcam, overlay
    heat, probs, classes = gradcam(model, images)      # images: (N, H, W, C) raw pixels
    picture = overlay(images[0], heat[0])             # (H, W, 3) uint8

The gradient is taken with TensorFlow's GradientTape (Kiln's backend); the models themselves stay
backend-agnostic Keras 3.
"""

from __future__ import annotations

import contextlib

import numpy as np

from kiln.errors import KilnError, received

CONV_TYPES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")


def _is_graph_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model) and hasattr(layer, "layers") and hasattr(layer, "_nodes_by_depth")


def _shape(layer):
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def _has_conv(model) -> bool:
    return any(type(l).__name__ in CONV_TYPES or (_is_graph_model(l) and _has_conv(l)) for l in model.layers)


def find_target_layer(model, min_side: int = 4) -> list:
    """[outer layers..., feature layer]: the path to the feature map Grad-CAM uses.

    When the last map is smaller than `min_side` (a small input through a deep backbone: 1x1 at the
    end of ResNet50 on 32x32 images), the last layer whose map is at least `min_side` wide is used.
    """
    layers = model.layers
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if _is_graph_model(layer) and _has_conv(layer):
            return [layer] + find_target_layer(layer, min_side)
        if type(layer).__name__ in CONV_TYPES:
            shape = _shape(layer)
            best = layer
            for later in layers[i + 1:]:
                s = _shape(later)
                if s is None or len(s) != 4 or shape is None or s[1:3] != shape[1:3]:
                    break
                best = later
            side = _shape(best)
            if side is not None and len(side) == 4 and None not in side[1:3] and min(side[1:3]) < min_side:
                for earlier in reversed(layers[:i]):
                    s = _shape(earlier)
                    if (s is not None and len(s) == 4 and None not in s[1:3] and min(s[1:3]) >= min_side
                            and type(earlier).__name__ not in ("InputLayer", "ZeroPadding2D", "Cropping2D")
                            and _has_conv_before(layers, earlier)):
                        return [earlier]
            return [best]
    raise KilnError(received("gradcam", "model", getattr(model, "name", "model"), "it has no 2-D convolution layer",
                             "Grad-CAM needs a convolutional model (cnn or a backbone)"))


def _has_conv_before(layers: list, layer) -> bool:
    """Whether some convolution precedes `layer` in `layers` (so its map holds learned features)."""
    for other in layers:
        if other is layer:
            return False
        if type(other).__name__ in CONV_TYPES:
            return True
    return False


def resolve_target(model, target: str | None) -> list:
    """`None` -> automatic; "name" or "backbone/name" -> that layer."""
    if target is None:
        return find_target_layer(model)
    path, node = [], model
    for part in target.split("/"):
        try:
            node = node.get_layer(part)
        except (ValueError, AttributeError):
            raise KilnError(received("gradcam", "layer", target, f"no layer {part} in {node.name}",
                                     "Name a layer from kiln inspect, e.g. backbone/conv5_block3_out")) from None
        path.append(node)
    return path


@contextlib.contextmanager
def _capture(layer, store: dict, key: str, tape, what: str = "output"):
    """Temporarily wrap `layer.call` so its output (or first input) lands in `store[key]`, watched by `tape`."""
    original = layer.call

    def call(*args, **kwargs):
        out = original(*args, **kwargs)
        value = out if what == "output" else args[0]
        if what == "output":
            tape.watch(value)
        store[key] = value
        return out

    object.__setattr__(layer, "call", call)
    try:
        yield
    finally:
        object.__delattr__(layer, "call")


def _logits_layer(model):
    """The softmax Dense named "predictions" whose input gives pre-softmax logits, if there is one."""
    try:
        layer = model.get_layer("predictions")
    except ValueError:
        return None
    return layer if type(layer).__name__ == "Dense" else None


def gradcam(model, images, class_index=None, target: str | None = None, batch_size: int = 16):
    """(heatmaps (N, h, w) in [0, 1] at feature-map resolution, probs (N, K), explained classes (N,)).

    `class_index`: None explains each image's predicted class; an int or (N,) array explains those.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise KilnError(received("gradcam", "backend", keras.backend.backend(), "Grad-CAM's gradient uses TensorFlow",
                                 "Set KERAS_BACKEND=tensorflow"))
    import tensorflow as tf

    path = resolve_target(model, target)
    feature_layer = path[-1]
    head = _logits_layer(model)
    images = np.asarray(images)
    heats, probs_all, explained = [], [], []
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(images[start:start + batch_size])
        store: dict = {}
        with tf.GradientTape() as tape, contextlib.ExitStack() as stack:
            stack.enter_context(_capture(feature_layer, store, "features", tape))
            if head is not None:
                stack.enter_context(_capture(head, store, "head_input", tape, what="input"))
            probs = model(x, training=False)
            probs = tf.cast(probs, tf.float32)
            if class_index is None:
                cls = tf.argmax(probs, axis=1, output_type=tf.int32)
            else:
                ci = np.broadcast_to(np.asarray(class_index), (len(images),))[start:start + batch_size]
                cls = tf.convert_to_tensor(ci.astype(np.int32))
            if head is not None and "head_input" in store:
                h = tf.cast(store["head_input"], tf.float32)
                logits = tf.matmul(h, tf.cast(head.kernel, tf.float32))
                if head.bias is not None:
                    logits = logits + tf.cast(head.bias, tf.float32)
            else:
                logits = tf.math.log(probs + 1e-12)
            score = tf.gather(logits, cls, axis=1, batch_dims=1)  # (B,)
        features = store["features"]
        grads = tape.gradient(score, features)
        if grads is None:
            raise KilnError(received("gradcam", "layer", feature_layer.name, "the class score does not depend on it",
                                     "Pick a layer on the path to the predictions"))
        features = tf.cast(features, tf.float32)
        weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2), keepdims=True)  # (B, 1, 1, k)
        cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)).numpy()  # (B, h, w)
        peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
        heats.append(np.where(peak > 0, cam / np.maximum(peak, 1e-12), 0.0).astype(np.float32))
        probs_all.append(probs.numpy())
        explained.append(cls.numpy())
    return np.concatenate(heats), np.concatenate(probs_all), np.concatenate(explained)


def upsample(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) heatmap -> (H, W), bilinear, as float32 in [0, 1]."""
    from PIL import Image

    h, w = size
    img = Image.fromarray(np.asarray(heatmap, np.float32), mode="F").resize((w, h), Image.BILINEAR)
    return np.clip(np.asarray(img, np.float32), 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a jet-coloured heatmap over an (H, W, C) image -> (H, W, 3) uint8."""
    import matplotlib

    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    heat = upsample(heatmap, image.shape[:2]) if heatmap.shape != image.shape[:2] else heatmap
    colour = matplotlib.colormaps["jet"](heat)[..., :3] * 255.0
    return np.clip((1 - alpha) * image.astype(np.float32) + alpha * colour, 0, 255).astype(np.uint8)


def layer_path_name(path: list) -> str:
    return "/".join(layer.name for layer in path)


__all__ = ["find_target_layer", "gradcam", "layer_path_name", "overlay", "resolve_target", "upsample"]
