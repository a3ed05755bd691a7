"""The typed config: one section per stage, every key with a default, a range and a meaning.

Each stage receives only its own section. `kiln/config/default.yaml` is rendered from this file
(`python -m kiln.config.schema > kiln/config/default.yaml`) and a test keeps them equal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    """Where the examples come from and how they are split and batched: what every task shares. A task's own
    data keys (the image size, a table's target, a series' horizon) live in its section."""

    path: Optional[str] = Field(None, description="the data: a folder, CSV / TSV / Parquet / JSON Lines file or TFRecord shard folder; its task is inferred (task=auto) from the files and keys")
    val_split: float = Field(0.1, ge=0.0, lt=1.0, description="fraction held out for validation when the source has no split")
    test_split: float = Field(0.1, ge=0.0, lt=1.0, description="fraction held out for the final test when the source has no split")
    batch_size: int = Field(32, ge=1, le=65536, description="examples per step on each replica; the global batch is batch_size x replicas (1 replica on a CPU)")
    cache: Literal["auto", "memory", "disk", "none"] = Field("auto", description="cache decoded examples; auto caches in memory when they fit in a quarter of RAM")
    shuffle_buffer: int = Field(10000, ge=1, description="examples held for shuffling the training split")

    @model_validator(mode="after")
    def _splits_leave_training_data(self):
        if self.val_split + self.test_split >= 0.9:
            raise ValueError("val_split|val_split + test_split must stay below 0.9 so training keeps data")
        return self


class ModelConfig(Section):
    """The model's name and the hyperparameters every family of every task shares; `auto` leaves a value to the
    task (an image CNN's dropout 0.25, a table network's 0.1, a forecaster's 0). A task's own architecture keys
    (a CNN's filters, a table's embedding width) live in its section."""

    name: str = Field("auto", description="a registered model (kiln models); auto picks one for the data")
    units: Union[Literal["auto"], list[int]] = Field("auto", description="hidden Dense layers before the output; auto: the task's default (images [128], tables [256, 128])")
    batchnorm: bool = Field(True, description="BatchNormalization after each conv / dense layer")
    activation: str = Field("relu", description="hidden activation (any Keras activation name)")
    dropout: Union[Literal["auto"], Annotated[float, Field(ge=0.0, lt=1.0)]] = Field("auto", description="dropout rate after each block / dense layer; auto: the task's default (images 0.25, tables 0.1, series 0)")
    l1: float = Field(0.0, ge=0.0, description="L1 weight penalty on kernels")
    l2: float = Field(0.0, ge=0.0, description="L2 weight penalty on kernels")
    initializer: str = Field("he_normal", description="kernel initializer (any Keras initializer name)")


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
    resume: Union[Literal["auto"], bool] = Field("auto", description="auto: continue an unfinished run_dir, or the latest unfinished runs_root/NAME[-N] when name= is given; true: continue the latest unfinished run (or fail); false: never")
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = Field("float32", description="compute dtype policy; mixed_* keeps weights and the softmax in float32")
    jit_compile: bool = Field(False, description="compile train and predict steps with XLA")
    distribute: Literal["auto", "none", "mirrored", "multi_worker"] = Field("auto", description="tf.distribute strategy; multi_worker reads TF_CONFIG; auto: multi_worker with TF_CONFIG, mirrored with 2+ GPUs, else none")
    doctor: bool = Field(True, description="record gradients, weights, dead units, input waiting and resources into RUN/diagnostics.csv for kiln doctor")
    doctor_every: Union[Literal["auto"], Annotated[int, Field(ge=1)]] = Field("auto", description="steps between gradient samples; auto: as many as fit in 1% of the training time")

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
    threshold: Union[float, str] = Field("auto", description="two-class runs: decision threshold chosen on val: auto (max_f1 when the rarer class is under 20% of training rows, else argmax), max_f1, youden, precision>=X, recall>=X, argmax or a number")
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


class Config(Section):
    """The keys every task shares; `config_model()` adds one section per task that declares one (`image`, `table`, ...)."""

    task: str = Field("auto", description="what the model answers: auto infers it from the data and keys; or a registered task name (image, table, text, series; classify or regress name a table task)")
    name: Optional[str] = Field(None, description="run name under runs_root (auto-numbered when empty)")
    run_dir: Optional[str] = Field(None, description="explicit run folder (overrides runs_root/name)")
    runs_root: str = Field("runs", description="folder that holds auto-numbered runs")
    seed: int = Field(42, ge=0, description="seed for splits, shuffling, initialisation")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)


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
