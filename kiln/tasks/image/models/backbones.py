"""Pretrained feature extractors from `keras.applications`, registered as Kiln models.

Every model here is `image (raw 0-255 pixels) -> backbone -> GAP -> Dropout -> predictions`, where
`backbone` is ONE nested `keras.Model` (layer name "backbone") that holds the family's own
`preprocess_input` (as Keras layers / ops, so any backend and any export sees it) followed by the
application without its top. Fine-tuning freezes or unfreezes `model.get_layer("backbone")`.

    model = create_model("efficientnet_b0", (224, 224, 3), 5, weights="imagenet")

Preprocessing per family (what `keras.applications.<family>.preprocess_input` does):
- caffe (ResNet v1, VGG): RGB -> BGR, subtract the ImageNet mean, no scaling.
- tf (ResNet v2, Inception v3, Inception-ResNet v2, Xception, MobileNet v2): x / 127.5 - 1.
- torch (DenseNet): x / 255, then per-channel ImageNet mean / std.
- builtin (EfficientNet, EfficientNet v2, MobileNet v3, ConvNeXt): the application already
  contains it (`include_preprocessing`), so nothing is added.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
from keras import layers

from kiln.errors import ConfigError, received
from kiln.tasks.image.models.registry import register_model

log = logging.getLogger("kiln.models")

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Family:
    application: str  # attribute of keras.applications
    family: str
    default_size: int
    preprocess: str  # caffe | tf | torch | builtin
    min_size: int = 32


# Registry name -> keras.applications builder, each family smallest first. Default sizes are each
# family's own (Keras docs / papers).
BACKBONES: dict[str, Family] = {
    **{f"efficientnet_b{i}": Family(f"EfficientNetB{i}", "efficientnet", size, "builtin")
       for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))},
    **{f"efficientnetv2_{v}": Family(f"EfficientNetV2{v.upper()}", "efficientnetv2", size, "builtin")
       for v, size in (("b0", 224), ("b1", 240), ("b2", 260), ("b3", 300), ("s", 384), ("m", 480), ("l", 480))},
    **{f"resnet{d}": Family(f"ResNet{d}", "resnet", 224, "caffe") for d in (50, 101, 152)},
    **{f"resnet{d}_v2": Family(f"ResNet{d}V2", "resnet_v2", 224, "tf") for d in (50, 101, 152)},
    "vgg16": Family("VGG16", "vgg", 224, "caffe"),
    "vgg19": Family("VGG19", "vgg", 224, "caffe"),
    "inception_v3": Family("InceptionV3", "inception", 299, "tf", min_size=75),
    "inception_resnet_v2": Family("InceptionResNetV2", "inception", 299, "tf", min_size=75),
    "xception": Family("Xception", "xception", 299, "tf", min_size=71),
    "mobilenet_v3_small": Family("MobileNetV3Small", "mobilenet", 224, "builtin"),
    "mobilenet_v2": Family("MobileNetV2", "mobilenet", 224, "tf"),
    "mobilenet_v3_large": Family("MobileNetV3Large", "mobilenet", 224, "builtin"),
    **{f"densenet{d}": Family(f"DenseNet{d}", "densenet", 224, "torch") for d in (121, 169, 201)},
    **{f"convnext_{s}": Family(f"ConvNeXt{s.capitalize().replace('large', 'Large')}", "convnext", 224, "builtin")
       for s in ("tiny", "small", "base", "large", "xlarge")},
}


def preprocess(x, mode: str):
    """Fold `keras.applications.<family>.preprocess_input` into the graph: raw 0-255 pixels in."""
    if mode == "caffe":
        x = keras.ops.flip(x, axis=-1)  # RGB -> BGR (a Keras op: saved with the model, safe_mode loads it)
        return layers.Rescaling(1.0, offset=[-m for m in CAFFE_MEAN_BGR], name="preprocess")(x)
    if mode == "tf":
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(x)
    if mode == "torch":
        scale = [1.0 / (255.0 * s) for s in TORCH_STD]
        offset = [-m / s for m, s in zip(TORCH_MEAN, TORCH_STD)]
        return layers.Rescaling(scale, offset=offset, name="preprocess")(x)
    return x  # builtin: the application rescales itself


def check_size(name: str, input_shape, min_size: int) -> None:
    h, w = input_shape[0], input_shape[1]
    if min(h, w) < min_size:
        raise ConfigError(received("model", "image_size", f"{h}x{w}", f"{name} needs images of at least {min_size}x{min_size}",
                                   f"Use image_size={min_size} or larger (its own size is image_size=auto)"))
    if input_shape[-1] != 3:
        raise ConfigError(received("model", "channels", input_shape[-1], f"{name} takes RGB images", "Use channels=3 or channels=auto"))


def application_backbone(name: str, input_shape, weights=None) -> keras.Model:
    """The nested feature extractor: raw pixels -> the family's preprocessing -> application without top."""
    from kiln.tasks.image.models.weights import imagenet_download

    spec = BACKBONES[name]
    check_size(name, input_shape, spec.min_size)
    app = getattr(keras.applications, spec.application)
    pixels = keras.Input(shape=tuple(input_shape), name="pixels")
    x = preprocess(pixels, spec.preprocess)
    # input_tensor: the application builds on top of our preprocessing, in one flat graph. The
    # preprocessing layers hold no weights, so Keras's by-order weight loading is unaffected.
    # input_shape too: some applications pick their ImageNet file by it (MobileNet v2: 96-224 px).
    kwargs = dict(include_top=False, weights=weights, input_tensor=x, input_shape=tuple(input_shape))
    if weights == "imagenet":
        with imagenet_download(name):
            net = app(**kwargs)
    else:
        net = app(**kwargs)
    if weights is None:
        scratch_batchnorm(net)
    return keras.Model(pixels, net.output, name="backbone")


def scratch_batchnorm(model: keras.Model, momentum: float = 0.9) -> None:
    """BatchNorm momentum for a backbone trained from scratch.

    keras.applications build BatchNorm with momentum 0.99-0.999, tuned for ImageNet's long runs from
    pretrained statistics. From scratch on a few hundred steps the moving statistics stay near their
    initial values, so inference (validation, test, export) sees garbage while training accuracy climbs:
    mobilenet_v3_small on 1,600 images at 64 px stayed at 0.25-0.28 val accuracy for 6 epochs at 0.999,
    and reached 1.0 from epoch 2 at 0.9 (Kiln's simple models use 0.9 too). Pretrained weights keep
    the application's own momentum."""
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", None) or [])  # nested blocks, where an application has them
        if isinstance(layer, keras.layers.BatchNormalization) and layer.momentum > momentum:
            layer.momentum = momentum


def classifier_head(features, num_classes: int, dropout: float = 0.0):
    """Pool whatever the backbone gives ((B,H,W,C), (B,N,C) or (B,C)) -> Dropout -> softmax (float32)."""
    if len(features.shape) == 4:
        features = layers.GlobalAveragePooling2D(name="gap")(features)  # (B, C)
    elif len(features.shape) == 3:
        features = layers.GlobalAveragePooling1D(name="gap")(features)  # (B, C)
    elif len(features.shape) != 2:
        features = layers.Flatten(name="flatten")(features)
    if dropout:
        features = layers.Dropout(dropout, name="head_dropout")(features)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(features)


def with_head(backbone: keras.Model, input_shape, num_classes: int, dropout: float, name: str) -> keras.Model:
    """`image -> backbone -> head`; the head lives outside the backbone so it can be trained alone."""
    inputs = keras.Input(shape=tuple(input_shape), name="image")  # (B, H, W, C) raw pixels
    outputs = classifier_head(backbone(inputs), num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)


def _make_builder(name: str, spec: Family):
    def build(input_shape, num_classes, weights="imagenet", dropout: float = 0.2):
        backbone = application_backbone(name, input_shape, weights)
        return with_head(backbone, input_shape, num_classes, dropout, name)

    build.__name__ = name
    build.__doc__ = (f"keras.applications.{spec.application} ({spec.preprocess} preprocessing folded in), "
                     f"pretrained on ImageNet; GAP + dropout head.")
    return build


for _name, _spec in BACKBONES.items():
    register_model(_name, family=_spec.family, default_size=_spec.default_size, min_size=_spec.min_size,
                   pretrained=True, application=_spec.application)(_make_builder(_name, _spec))
