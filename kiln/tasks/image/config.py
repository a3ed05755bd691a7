"""The image task's own config section (`image.*`): input size and decoding, the CNN / ViT architecture keys,
starting weights and training-only augmentation. Bare keys stay shortcuts: `image_size=64` is `image.image_size=64`,
`flip=horizontal` is `image.augment.flip=horizontal`. Config files written before sections were per task
(`data.image_size`, `model.filters`, `augment.flip`) still load: kiln/config/load.py maps them here."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, model_validator

from kiln.config.schema import DataConfig, Section
from kiln.tasks.image.data import alpha


class AugmentConfig(Section):
    """Training-only augmentation: Keras preprocessing layers in the tf.data pipeline (CPU), after the cache."""

    flip: Literal["none", "horizontal", "vertical", "both"] = Field("none", description="random flips")
    rotation: Union[Literal["auto"], Annotated[float, Field(ge=0.0, le=0.5)]] = Field("auto", description="random rotation up to +- this fraction of a full turn (0.05 = 18 degrees); auto: 0.02 with epochs=auto for models trained from scratch, else 0")
    zoom: Union[Literal["auto"], Annotated[float, Field(ge=0.0, lt=1.0)]] = Field("auto", description="random zoom in or out by up to this fraction; auto: 0.05 with epochs=auto for models trained from scratch, else 0")
    translation: Union[Literal["auto"], Annotated[float, Field(ge=0.0, le=0.5)]] = Field("auto", description="random shift by up to this fraction of the height and width; auto: 0.08 with epochs=auto for models trained from scratch, else 0")
    shear: float = Field(0.0, ge=0.0, le=1.0, description="random shear up to this factor on both axes")
    crop: float = Field(0.0, ge=0.0, le=0.9, description="random crop of (1 - crop) of each side, resized back (0.2 = 80% windows)")
    perspective: float = Field(0.0, ge=0.0, le=1.0, description="random perspective distortion of this scale, on half the images")
    contrast: float = Field(0.0, ge=0.0, le=1.0, description="random contrast change by up to this factor")
    brightness: float = Field(0.0, ge=0.0, le=1.0, description="random brightness shift by up to this fraction of 255")
    saturation: Union[Literal["auto"], Annotated[float, Field(ge=0.0, le=1.0)]] = Field("auto", description="random saturation change by up to this amount (RGB only); auto: 0.3 when the images' hues do not predict the class (epochs=auto, from scratch), else 0")
    hue: Union[Literal["auto"], Annotated[float, Field(ge=0.0, le=1.0)]] = Field("auto", description="random hue rotation by up to this amount (RGB only); auto: 0.5 when the images' hues do not predict the class (epochs=auto, from scratch), else 0")
    grayscale: float = Field(0.0, ge=0.0, le=1.0, description="probability of turning an image grey (RGB only)")
    sharpness: float = Field(0.0, ge=0.0, le=1.0, description="random sharpen / soften by up to this amount")
    blur: float = Field(0.0, ge=0.0, le=1.0, description="random Gaussian blur of up to this strength")
    erasing: float = Field(0.0, ge=0.0, le=1.0, description="probability of erasing a random patch (random erasing / cutout)")
    randaugment: bool = Field(False, description="RandAugment: randaugment_ops random ops per image")
    randaugment_ops: int = Field(2, ge=1, le=10, description="RandAugment: ops applied per image")
    randaugment_magnitude: float = Field(0.5, gt=0.0, le=1.0, description="RandAugment: strength of each op")
    augmix: bool = Field(False, description="AugMix: mix chains of random ops (RGB only)")
    mixup: float = Field(0.0, ge=0.0, le=10.0, description="MixUp alpha on whole batches with one-hot labels (0 = off; 0.2 is typical)")
    cutmix: float = Field(0.0, ge=0.0, le=1.0, description="CutMix factor (0 = off; 1.0 is typical); with mixup, each batch gets one of the two")


class ImageDataConfig(Section):
    """How image files become model inputs."""

    image_size: Union[Literal["auto"], int, list[int]] = Field("auto", description="side or [height, width] fed to the model; auto: the model's own size, else the median side rounded up to 32 in [32, 128] ([32, 64] under 5,000 training images)")
    channels: Union[Literal["auto"], Literal[1, 3, 4]] = Field("auto", description="1 (grayscale), 3 (RGB) or 4 (RGB + alpha, kept as a channel); auto uses 1 when every sampled image is grey, else 3")
    alpha_background: str = Field("white", description="colour transparent pixels are composited onto, as viewers show them: white, black, any name or #rrggbb (channels=4 keeps alpha instead)")
    resize: Literal["stretch", "pad", "crop"] = Field("stretch", description="stretch to size, pad to keep aspect, or centre crop to keep aspect")
    check_images: bool = Field(True, description="decode every file before training and leave out the ones that fail")
    target: Optional[str] = Field(None, description="image: a CSV column of numbers to predict (image regression: path,<column>); none: the label column names classes (a label column of decimal numbers regresses too)")
    max_pixels: int = Field(89_478_485, ge=1, description="refuse images with more pixels than this (decompression bombs)")

    @model_validator(mode="after")
    def _image_keys(self):
        if isinstance(self.image_size, list) and (len(self.image_size) != 2 or min(self.image_size) < 8):
            raise ValueError("image_size|image_size must be one side or [height, width], each at least 8")
        if isinstance(self.image_size, int) and self.image_size < 8:
            raise ValueError("image_size|image_size must be at least 8")
        try:
            alpha.background_rgb(self.alpha_background)
        except ValueError:
            raise ValueError("alpha_background|alpha_background must be a colour: white, black, another name "
                             "such as gray, or #rrggbb") from None
        return self


class ImageConfig(ImageDataConfig):
    """`cfg.image`: the image task's section."""

    loss: Literal["auto", "mse", "mae", "huber", "crossentropy"] = Field("auto", description="image: auto (cross-entropy for classes, mse for a numeric target), or mse, mae or huber (delta: the target's std) for a numeric target")

    filters: Union[Literal["auto"], list[int]] = Field("auto", description="cnn: filters of each conv block; auto: a block per halving of the side down to 4-7 px (2-5 blocks), 32 filters doubling to at most 256")
    convs_per_block: Union[Literal["auto"], Annotated[int, Field(ge=1, le=8)]] = Field("auto", description="cnn: conv layers per block; auto: 2 with filters=auto (a VGG-style stack), 1 with filters you chose")
    kernel_size: int = Field(3, ge=1, le=15, description="cnn: kernel side")
    strides: int = Field(1, ge=1, le=4, description="cnn: conv stride")
    padding: Literal["same", "valid"] = Field("same", description="cnn: conv padding")
    pooling: Literal["max", "avg", "none"] = Field("max", description="cnn: pooling after each block")
    head: Literal["gap", "flatten"] = Field("gap", description="cnn: global-average-pooling or flatten before the classifier")
    weights: str = Field("auto", description="starting weights: auto (imagenet for keras.applications backbones, else none), imagenet, none, or a run folder / .keras / .weights.h5 / .h5 path whose backbone is reused")
    patch_size: Union[Literal["auto"], int] = Field("auto", description="vit: patch side in pixels; auto gives ~8x8 tokens on small images, 16 px from 128 px up")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


class ImageServeOptions(Section):
    """`kiln serve` keys of an image model (Task.serve_options)."""

    max_pixels: int = Field(40_000_000, ge=1, description="largest image (width x height) accepted; bigger ones get 413")
    top_k: int = Field(5, ge=1, description="labels returned by /predict unless the request sets top_k")


class ImageData(DataConfig, ImageDataConfig):
    """What the image data stages read: the shared data keys (path, splits, batch, cache) and the image task's own."""


def image_data(cfg) -> ImageData:
    """The data view of a full config (`cfg.data` + the data keys of `cfg.image`)."""
    return ImageData(**cfg.data.model_dump(), **cfg.image.model_dump(include=set(ImageDataConfig.model_fields)))


MODEL_KEYS = {"filters", "convs_per_block", "kernel_size", "strides", "padding", "pooling", "head", "weights", "patch_size"}

# Keys of config files and run.json "auto" records written before sections were per task -> their place now.
LEGACY = {**{f"data.{k}": f"image.{k}" for k in ImageDataConfig.model_fields},
          **{f"model.{k}": f"image.{k}" for k in sorted(MODEL_KEYS)},
          "augment.": "image.augment."}

SHARED_DEFAULTS = {"units": [128], "dropout": 0.25}  # what the shared model keys' `auto` means for an image model


def model_kwargs(cfg) -> dict:
    """The image model builders' keyword arguments: the shared model keys (their `auto` resolved) and the image section's."""
    shared = {k: (SHARED_DEFAULTS[k] if v == "auto" else v) for k, v in cfg.model.model_dump(exclude={"name"}).items()}
    return {**shared, **cfg.image.model_dump(include=MODEL_KEYS)}
