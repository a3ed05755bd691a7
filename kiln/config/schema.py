"""The typed config: one section per stage, every key with a default, a range and a meaning.

Each stage receives only its own section. `kiln/config/default.yaml` is rendered from this file
(`python -m kiln.config.schema > kiln/config/default.yaml`) and a test keeps them equal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kiln.tasks.image.data import alpha


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    path: Optional[str] = Field(None, description="folder per class, pre-split folder {train,val,test}/<class>, CSV path,label[,split], or TFRecord shard folder")
    val_split: float = Field(0.1, ge=0.0, lt=1.0, description="fraction held out for validation when the source has no split")
    test_split: float = Field(0.1, ge=0.0, lt=1.0, description="fraction held out for the final test when the source has no split")
    image_size: Union[Literal["auto"], int, list[int]] = Field("auto", description="side or [height, width] fed to the model; auto: the model's own size, else the median side rounded up to 32 in [32, 128] ([32, 64] under 5,000 training images)")
    channels: Union[Literal["auto"], Literal[1, 3, 4]] = Field("auto", description="1 (grayscale), 3 (RGB) or 4 (RGB + alpha, kept as a channel); auto uses 1 when every sampled image is grey, else 3")
    alpha_background: str = Field("white", description="colour transparent pixels are composited onto, as viewers show them: white, black, any name or #rrggbb (channels=4 keeps alpha instead)")
    resize: Literal["stretch", "pad", "crop"] = Field("stretch", description="stretch to size, pad to keep aspect, or centre crop to keep aspect")
    batch_size: int = Field(32, ge=1, le=65536, description="images per step on each replica; the global batch is batch_size x replicas (1 replica on a CPU)")
    cache: Literal["auto", "memory", "disk", "none"] = Field("auto", description="cache decoded images; auto caches in memory when they fit in a quarter of RAM")
    shuffle_buffer: int = Field(10000, ge=1, description="images held for shuffling the training split")
    check_images: bool = Field(True, description="decode every file before training and leave out the ones that fail")
    max_pixels: int = Field(89_478_485, ge=1, description="refuse images with more pixels than this (decompression bombs)")

    @model_validator(mode="after")
    def _splits_leave_training_data(self):
        if self.val_split + self.test_split >= 0.9:
            raise ValueError("val_split|val_split + test_split must stay below 0.9 so training keeps data")
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


class ModelConfig(Section):
    name: str = Field("auto", description="a registered model (kiln models); auto picks one for the data")
    filters: Union[Literal["auto"], list[int]] = Field("auto", description="cnn: filters of each conv block; auto: a block per halving of the side down to 4-7 px (2-5 blocks), 32 filters doubling to at most 256")
    convs_per_block: Union[Literal["auto"], Annotated[int, Field(ge=1, le=8)]] = Field("auto", description="cnn: conv layers per block; auto: 2 with filters=auto (a VGG-style stack), 1 with filters you chose")
    kernel_size: int = Field(3, ge=1, le=15, description="cnn: kernel side")
    strides: int = Field(1, ge=1, le=4, description="cnn: conv stride")
    padding: Literal["same", "valid"] = Field("same", description="cnn: conv padding")
    pooling: Literal["max", "avg", "none"] = Field("max", description="cnn: pooling after each block")
    head: Literal["gap", "flatten"] = Field("gap", description="cnn: global-average-pooling or flatten before the classifier")
    units: list[int] = Field([128], description="dnn and cnn: hidden Dense layers before the classifier")
    batchnorm: bool = Field(True, description="BatchNormalization after each conv / dense layer")
    activation: str = Field("relu", description="hidden activation (any Keras activation name)")
    dropout: float = Field(0.25, ge=0.0, lt=1.0, description="dropout rate after each block / dense layer")
    l1: float = Field(0.0, ge=0.0, description="L1 weight penalty on kernels")
    l2: float = Field(0.0, ge=0.0, description="L2 weight penalty on kernels")
    initializer: str = Field("he_normal", description="kernel initializer (any Keras initializer name)")
    weights: str = Field("auto", description="starting weights: auto (imagenet for keras.applications backbones, else none), imagenet, none, or a run folder / .keras / .weights.h5 / .h5 path whose backbone is reused")
    patch_size: Union[Literal["auto"], int] = Field("auto", description="vit: patch side in pixels; auto gives ~8x8 tokens on small images, 16 px from 128 px up")


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


class TrainConfig(Section):
    epochs: Union[Literal["auto"], Annotated[int, Field(ge=1, le=100000)]] = Field("auto", description="passes over the training split (early stopping may end sooner); auto: about 30,000 images seen, 20-100 epochs")
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam"] = Field("adam", description="optimizer")
    lr: float = Field(1e-3, gt=0.0, le=10.0, description="peak learning rate")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd / rmsprop momentum")
    nesterov: bool = Field(False, description="sgd: Nesterov momentum")
    weight_decay: float = Field(1e-4, ge=0.0, description="adamw decoupled weight decay")
    schedule: Literal["constant", "step", "exponential", "cosine"] = Field("cosine", description="learning-rate schedule over the run")
    warmup_epochs: float = Field(0.0, ge=0.0, description="linear warmup from 0 to lr (cosine only)")
    step_epochs: int = Field(10, ge=1, description="step: epochs between drops")
    decay_rate: float = Field(0.1, gt=0.0, le=1.0, description="step: factor per drop; exponential: factor per epoch ^ (1 / step_epochs)")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="label smoothing of the cross-entropy")
    class_weight: Literal["none", "balanced"] = Field("none", description="balanced weighs each class by n / (k * count)")
    top_k: int = Field(5, ge=1, description="k of the top-k accuracy metric (clipped to the number of classes)")
    monitor: str = Field("val_loss", description="metric watched by checkpoint, early stopping and LR reduction")
    patience: Union[Literal["auto"], Annotated[int, Field(ge=0)]] = Field("auto", description="early stopping patience in epochs (0 turns it off); best weights restored; auto: half of epochs, at least 10")
    refit: Union[Literal["auto"], bool] = Field("auto", description="after val picks the best epoch, train a fresh model on train+val for that many epochs; auto: on with epochs=auto for from-scratch one-phase runs with a val split")
    reduce_lr_patience: int = Field(0, ge=0, description="ReduceLROnPlateau patience (needs schedule=constant; 0 turns it off)")
    tensorboard: bool = Field(True, description="write TensorBoard logs to RUN/tensorboard")
    verbose: int = Field(1, ge=0, le=2, description="Keras fit progress: 0 silent, 1 bar, 2 a line per epoch")
    export_on_finish: Literal["auto", "none", "onnx"] = Field("auto", description="write a verified float ONNX export to RUN/exports/onnx at the end, which kiln predict then runs without TensorFlow; auto: onnx when training took 30 s or more (the export costs a few seconds)")
    phases: Literal["auto", 1, 2] = Field("auto", description="2: train the head on a frozen backbone, then fine-tune; 1: everything at once; auto: 2 when the model has a pretrained backbone")
    finetune_epochs: int = Field(10, ge=0, description="phase 2: epochs of fine-tuning after the head (0 skips phase 2)")
    finetune_lr: float = Field(1e-5, gt=0.0, le=10.0, description="phase 2: peak learning rate, usually 10-100x below lr")
    finetune_patience: int = Field(5, ge=0, description="phase 2: early stopping patience in epochs (0 turns it off)")
    unfreeze: Union[Literal["all"], int, float] = Field("all", description="phase 2: backbone layers (with weights) trained, from the top: all, a count N or a fraction in (0, 1]; BatchNorm stays frozen")
    resume: Union[Literal["auto"], bool] = Field("auto", description="auto: continue an unfinished run_dir; true: continue the latest unfinished run (or fail); false: never")
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = Field("float32", description="compute dtype policy; mixed_* keeps weights and the softmax in float32")
    jit_compile: bool = Field(False, description="compile train and predict steps with XLA")
    distribute: Literal["auto", "none", "mirrored", "multi_worker"] = Field("auto", description="tf.distribute strategy; multi_worker reads TF_CONFIG; auto: multi_worker with TF_CONFIG, mirrored with 2+ GPUs, else none")

    @model_validator(mode="after")
    def _reduce_lr_needs_constant(self):
        if self.reduce_lr_patience and self.schedule != "constant":
            raise ValueError("reduce_lr_patience|reduce_lr_patience needs schedule=constant (a schedule already sets the LR)")
        if isinstance(self.unfreeze, bool) or (isinstance(self.unfreeze, int) and self.unfreeze < 1):
            raise ValueError("unfreeze|unfreeze must be all, a layer count >= 1 or a fraction in (0, 1]")
        if isinstance(self.unfreeze, float) and not 0.0 < self.unfreeze <= 1.0:
            raise ValueError("unfreeze|unfreeze must be all, a layer count >= 1 or a fraction in (0, 1]")
        return self


class TuneRange(Section):
    min: float = Field(description="lowest value")
    max: float = Field(description="highest value")
    step: Optional[float] = Field(None, gt=0.0, description="grid step (empty: continuous for floats, 1 for ints)")
    sampling: Literal["linear", "log"] = Field("linear", description="log samples evenly in log space (min must be > 0)")

    @model_validator(mode="after")
    def _ordered(self):
        if self.max <= self.min:
            raise ValueError("space|a range needs min < max")
        if self.sampling == "log" and self.min <= 0:
            raise ValueError("space|sampling=log needs min > 0")
        return self


class TuneConfig(Section):
    space: dict[str, Any] = Field(default_factory=dict, description="config key -> list of choices or {min, max, step, sampling}; e.g. {train.lr: {min: 1e-4, max: 1e-2, sampling: log}, model.dropout: [0.1, 0.3]}")
    algorithm: Literal["random", "hyperband", "bayesian"] = Field("random", description="KerasTuner search: random, hyperband or bayesian")
    trials: int = Field(10, ge=1, le=100000, description="trials to run (hyperband derives its own count from trial_epochs)")
    trial_epochs: Optional[int] = Field(None, ge=1, description="epochs per trial (hyperband: the most any trial gets); empty: train.epochs")
    objective: str = Field("val_accuracy", description="history column to optimise: *loss is minimised, anything else maximised")
    hyperband_factor: int = Field(3, ge=2, description="hyperband: reduction factor between rounds")

    @model_validator(mode="after")
    def _space(self):
        from pydantic import ValidationError

        for key, value in self.space.items():
            if isinstance(value, list) and value:
                continue
            if not isinstance(value, dict):
                raise ValueError(f"space|{key} needs a non-empty list of choices or a range {{min, max, step, sampling}}")
            try:
                TuneRange.model_validate(value)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"space|{key}{'.' + where if where else ''}: {first['msg'].removeprefix('Value error, ').split('|')[-1]}") from None
        return self


class EvaluateConfig(Section):
    threshold: Union[float, str] = Field("max_f1", description="two-class runs: decision threshold chosen on val: max_f1, youden, precision>=X, recall>=X, argmax or a number")
    report: bool = Field(True, description="write RUN/report.html (plots, errors, Grad-CAM) at the end of training")

    @model_validator(mode="after")
    def _threshold_rule(self):
        from kiln.errors import KilnError
        from kiln.evaluate.threshold import parse_rule

        try:
            parse_rule(self.threshold)
        except KilnError as err:
            raise ValueError("threshold|" + str(err).split("; ", 1)[1].split(". ", 1)[0]) from None
        return self


from kiln.tasks.table.config import TableConfig  # noqa: E402  (a task's own section)


class Config(Section):
    task: str = Field("auto", description="what the model answers: auto (from the data), image, table, text, series; classify or regress name a table task")
    name: Optional[str] = Field(None, description="run name under runs_root (auto-numbered when empty)")
    run_dir: Optional[str] = Field(None, description="explicit run folder (overrides runs_root/name)")
    runs_root: str = Field("runs", description="folder that holds auto-numbered runs")
    seed: int = Field(42, ge=0, description="seed for splits, shuffling, initialisation")
    task: str = Field("auto", description="what the model does: auto infers it from the data and keys (image: a folder of images, a CSV of paths or shards); or a registered task name")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    table: TableConfig = Field(default_factory=TableConfig)


def config_model() -> type[Config]:
    """`Config` plus one section per registered task that declares one (`Task.config_section`, named after
    the task): the one schema the shared loader validates against."""
    from kiln.tasks.base import TASKS, _load

    _load()
    sections = tuple((name, t.config_section) for name, t in sorted(TASKS.items()) if t.config_section is not None)
    if sections not in _MODELS:
        from pydantic import create_model

        fields = {name: (cls, Field(default_factory=cls)) for name, cls in sections}
        _MODELS[sections] = create_model("Config", __base__=Config, **fields) if fields else Config
    return _MODELS[sections]


_MODELS: dict[tuple, type[Config]] = {}


def render_default_yaml(model: type[BaseModel] | None = None, indent: int = 0) -> str:
    """The commented default config: `key: value  # meaning`, one line a key."""
    import yaml

    model = config_model() if model is None else model
    lines = []
    if indent == 0:
        lines.append("# Kiln default config. Every key can be overridden: kiln train key=value or section.key=value.")
    pad = "  " * indent
    for key, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines.append(f"{pad}{key}:")
            lines.append(render_default_yaml(ann, indent + 1))
            continue
        default = field.get_default(call_default_factory=True)
        value = yaml.safe_dump(default, default_flow_style=True).strip()
        if value.endswith("\n..."):
            value = value[:-4].strip()
        value = value.removesuffix("...").strip()
        lines.append(f"{pad}{key}: {value}  # {field.description}")
    return "\n".join(lines) + ("\n" if indent == 0 else "")


if __name__ == "__main__":
    print(render_default_yaml(), end="")
