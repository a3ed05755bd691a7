"""The task contract: everything that depends on what the data is and what the model must answer.

The spine (cli, api, run, config, train, export, serve, the report renderer) resolves a `Task` from
`TASKS` and calls the methods below; it never names a task nor looks inside a task's model. A task
lives in its own folder (kiln/tasks/<name>/) and registers itself once with `@register_task`; the one
line that makes it known is its entry in `BUILTIN` below (imported lazily, so `kiln --help` stays fast).

    task = get_task("image")                        # or resolve_task(cfg): task=, else inferred from data
    source = task.read_source(cfg)                  # rows read, unusable ones left out (and said so)
    data = task.analyse(source, cfg, model_name)    # splits + the spec saved in run.json
    ds = task.make_dataset(data.split("train"), data.spec, cfg, training=True)   # tf.data of (x, y)
    model = task.build_model(model_name, data, cfg) # from the task's own ModelRegistry
    spec = task.compile_spec(data, cfg)             # loss, metrics, monitored metric and direction

A new task implements `Task` (abstract methods must exist; the others raise `TaskError` saying the
task does not support that command) and adds its module to `BUILTIN`.
"""

from __future__ import annotations

import abc
import difflib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping

from kiln.errors import KilnError, received
from kiln.tasks.models import ModelEntry, ModelRegistry  # noqa: F401  (part of the contract)
from kiln.tasks.types import (ACCURACY, MACRO_F1, MAE, OUTPUT_KINDS, R2, RMSE, CompileSpec, Example, Metric, Prepared,  # noqa: F401
                              ReportSection, Signature, Source, TensorSpec)

if TYPE_CHECKING:  # only for annotations: importing them here would pull in TensorFlow
    import pandas as pd

# name -> module whose import registers the task. The one line a new task adds.
BUILTIN: dict[str, str] = {
    "image": "kiln.tasks.image",
    "table": "kiln.tasks.table.task",
    "text": "kiln.tasks.text.task",
    "series": "kiln.tasks.series.task",
    "anomaly": "kiln.tasks.anomaly.task",
}


# name -> module whose import registers the Keras layers a task's model.keras files refer to; `kiln.io.load_keras`
# imports them before loading any model file, so reading a run's spec never has to start Keras (a table run's
# `kiln predict` through its ONNX export runs without TensorFlow).
LAYERS: dict[str, str] = {
    "table": "kiln.tasks.table.layers",
    "text": "kiln.tasks.text.layers",
    "series": "kiln.tasks.series.layers",
    "anomaly": "kiln.tasks.anomaly.layers",
}


def register_layers() -> None:
    for module in LAYERS.values():
        importlib.import_module(module)


class TaskError(KilnError):
    """A command a task does not support, or a task that cannot be found."""


@dataclass(frozen=True)
class TaskInfo:
    """What a task is, in data: read by the CLI, the trainer, `kiln runs` and the contract test."""

    name: str  # the value of `task=` and of run.json's "task"
    description: str  # one line for `kiln tasks` / help
    sources: tuple[str, ...]  # what read_source reads, in words ("folder per class", "CSV path,label[,split]")
    label_kinds: tuple[str, ...]  # "classification", "regression", "forecast", "anomaly", "generation"
    default_model: str  # what model=auto resolves to unless the task chooses from the data
    monitor: str  # metric watched by checkpoint / early stopping when train.monitor is left at its default
    mode: Literal["min", "max"]  # direction of `monitor`
    export_formats: tuple[str, ...]  # formats `kiln export` accepts for this task (a subset of kiln.export.FORMATS)
    aliases: tuple[str, ...] = ()  # other values of `task=` that name this task (e.g. "classify", "regress")
    resume_keys: tuple[str, ...] = ()  # task config keys whose change makes a checkpoint unusable (prefixes allowed)
    runtimes: tuple[str, ...] = ("keras",)  # what `kiln predict runtime=` may name (besides auto); with more than one, predict gets `runtime=`
    # Tags the spine reads instead of special cases (scikit-learn's estimator tags):
    target: Literal["required", "none"] = "required"  # whether training data must carry a target (anomaly / generate: none)
    returns: tuple[str, ...] = ("probabilities",)  # the OUTPUT_KINDS this task's models can return; `Task.returns(meta)` picks a run's
    headline: Mapping[str, tuple[Metric, ...]] = field(default_factory=lambda: {"probabilities": (ACCURACY, MACRO_F1)})
    # ^ per output kind, the metrics.json keys every view leads with (summary line, kiln runs / compare, curves), best first


class Adapter(abc.ABC):
    """Serving for one loaded model: the request schema, requests -> model batches, batches -> answers.

    The spine's server owns HTTP, auth, limits, health, metrics and micro-batching; it mounts
    `routes()` and calls `decode` on each micro-batch (rows a request left encoded) off the event loop.
    """

    all_outputs = False  # True: the batcher answers every named output of the signature (a dict), not only the first

    def __init__(self, served):
        self.served = served  # kiln.serve.model.ServedModel

    @abc.abstractmethod
    def routes(self) -> list:
        """Starlette routes answering this task's protocols (e.g. KServe v2, TF Serving REST, /predict)."""

    @abc.abstractmethod
    def metadata(self) -> dict:
        """The request schema: inputs and outputs with names, datatypes and shapes (KServe v2 metadata)."""

    def decode(self, rows: list):
        """Batch-decode rows a request left encoded (None: requests arrive as model-ready arrays)."""
        return None

    def warm(self, state) -> None:
        """Run one request's worth of work so the first real request is not slow (optional)."""

    def describe(self) -> str:
        """What `kiln serve` prints about the model's inputs and outputs, e.g. "3 classes, input 32x32x3 uint8"."""
        return ", ".join(f"{t.name} {t.dtype}" for t in self.served.signature.inputs)

    def page(self, state) -> str | None:
        """The HTML page served at GET / (None: no page); `state` is the server's (api_key, limits)."""
        return None


class Task(abc.ABC):
    """One kind of job. Subclasses set `info` and `models` and implement the abstract methods.

    Methods receive the validated `Config` (kiln/config) and the outputs of the previous stage; they
    never read global state. Optional methods raise `TaskError` through `unsupported`.
    """

    info: TaskInfo
    models: ModelRegistry
    config_section: type | None = None  # a kiln.config.schema.Section validated as cfg.<info.name>; None: shared sections only
    serve_options: type | None = None  # a kiln.config.schema.Section of this task's own `kiln serve` keys (max_pixels, top_k)
    config_legacy: Mapping[str, str] = {}  # keys of older config files -> their place in this task's section ("data.x" -> "image.x";
    # a key ending in "." moves a whole section); the loader applies them, so an old run's config.yaml still loads

    # --- which data is this task's ------------------------------------------------------------
    @abc.abstractmethod
    def claims(self, path: str | None, keys: Mapping[str, Any]) -> int:
        """How sure this task is that `data=path` with these config keys is its data: 0 (not mine) to 100.

        `infer_task` picks the highest; a task must answer from file names and headers, never by
        reading a whole dataset."""

    # --- data ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def read_source(self, cfg) -> Source:
        """Read and check `cfg.data.path`: rows, rows left out with why, and facts for defaults."""

    @abc.abstractmethod
    def analyse(self, source: Source, cfg, model_name: str) -> Prepared:
        """Splits (the source's own, else seeded), label vocabulary and the spec the model needs."""

    @abc.abstractmethod
    def write_data(self, data: Prepared, run_dir: Path) -> None:
        """Write splits.csv (and anything else about the rows, e.g. skipped.csv) into the run folder."""

    def splits_frame(self, data: Prepared) -> "pd.DataFrame":
        """The rows as splits.csv holds them; resume compares it with the saved file (same rows, same split)."""
        return data.rows

    @abc.abstractmethod
    def make_dataset(self, rows: "pd.DataFrame", spec, cfg, training: bool, **options):
        """A batched tf.data.Dataset of (x, y) for `rows` (options: batch_size, cache_dir, ...)."""

    def batch_size(self, cfg, data: Prepared) -> int:
        """Examples per step on one replica (the trainer multiplies by the replicas): `data.batch_size` unless the
        task sizes batches from its data (tables: rows / 100)."""
        return int(cfg.data.batch_size)

    def datasets(self, data: Prepared, cfg, run_dir: Path, batch_size: int):
        """(train_ds, val_ds or None, steps per epoch) at the global `batch_size`."""
        import math

        train_rows, val_rows = data.split("train"), data.split("val")
        train_ds = self.make_dataset(train_rows, data.spec, cfg, True, batch_size=batch_size, run_dir=run_dir)
        val_ds = self.make_dataset(val_rows, data.spec, cfg, False, batch_size=batch_size, run_dir=run_dir) if len(val_rows) else None
        return train_ds, val_ds, int(math.ceil(len(train_rows) / batch_size))

    def refit_dataset(self, data: Prepared, cfg, run_dir: Path, batch_size: int):
        """(train+val dataset, steps per epoch) for `train.refit`: the final model also learns from val."""
        import math

        rows = data.rows[data.rows["split"].isin(["train", "val"])]
        return (self.make_dataset(rows, data.spec, cfg, True, batch_size=batch_size, run_dir=run_dir),
                int(math.ceil(len(rows) / batch_size)))

    def resolve_auto(self, cfg, data: Prepared, model_name: str):
        """(config with the `auto` values this task decides from the data, [kiln.train.auto.Decision]).

        The trainer prints each decision once and keeps them in run.json "auto"; config.yaml keeps `auto`."""
        return cfg, []

    # --- model ---------------------------------------------------------------------------------
    def choose_model(self, cfg) -> str:
        """The registered model name `model=` resolves to (auto: `info.default_model`); fails on unknown names."""
        name = self.info.default_model if cfg.model.name == "auto" else cfg.model.name
        self.models.get(name)
        return name

    @abc.abstractmethod
    def build_model(self, name: str, data: Prepared, cfg):
        """An uncompiled keras.Model that takes raw inputs (preprocessing inside) for `data.spec`."""

    def custom_model(self, body):
        """A builder for this task's registry around your model (`model=FILE.py:build`, kiln/user_model.py): it builds
        the task's front and end and calls `body(BuildSpec)` for what goes between them."""
        raise self.unsupported("model=FILE.py:build")

    @abc.abstractmethod
    def compile_spec(self, data: Prepared, cfg) -> CompileSpec:
        """Loss, metrics, monitored metric and class weights for this data and config."""

    def compile(self, model, optimizer, compiled: CompileSpec, cfg) -> None:
        """Compile `model` for a phase (the trainer, lr-find and tune all come through here). A model with its own
        `compile` / `train_step` (a GAN, a VAE) overrides this; the default is Keras's plain call."""
        model.compile(optimizer=optimizer, loss=compiled.loss, metrics=compiled.metrics, jit_compile=cfg.train.jit_compile)

    def pretrained(self, cfg, model_name: str) -> bool:
        """Whether the model's "backbone" starts from learned features (then `phases=auto` trains the head first)."""
        return False

    def describe(self, model_name: str, model, data: Prepared) -> str:
        """The one line printed before training starts."""
        c = data.counts()
        return (f"kiln: training {model_name} ({model.count_params():,} parameters) on {c['train']} rows, "
                f"{c['val']} val / {c['test']} test")

    def after_fit(self, run, data: Prepared, cfg) -> dict:
        """Values learned after fitting (a decision threshold, an anomaly threshold, a residual scale), as run.json keys.

        Called by the trainer with the trained model (`run.model`) and the run.json so far (`run.meta`), before the
        run folder is finished; the trainer writes what it returns into run.json, once, saves `run.model` as model.keras
        (a task may set another model there, e.g. one chosen against classical forecasters), then calls `evaluate`."""
        return {}

    def verdict_advice(self, verdict: dict) -> str:
        """What to try when the model loses to `verdict["baseline"]` (kiln/evaluate/verdict.py); one sentence."""
        return (f"Try another model (kiln models) or a longer run, or use the {verdict['baseline']} baseline, "
                "which scored better on the same split")

    # --- run folder ------------------------------------------------------------------------------
    @abc.abstractmethod
    def run_meta(self, data: Prepared) -> dict:
        """Keys this task adds to run.json (its spec, classes, ...); `load_spec` reads them back."""

    @abc.abstractmethod
    def load_spec(self, meta: Mapping):
        """The spec from run.json (or export.json) as `run_meta` wrote it."""

    def returns(self, meta: Mapping) -> str:
        """What this run's model returns (one of `info.returns`), from its run.json; default the task's first kind."""
        return self.info.returns[0]

    def headline_metrics(self, meta: Mapping) -> tuple[Metric, ...]:
        """The typed metrics a run of this task leads with, best first (`info.headline` for `returns(meta)`)."""
        return tuple(self.info.headline.get(self.returns(meta), ()))

    def describe_run(self, meta: Mapping) -> dict:
        """Columns of `kiln runs` / `kiln compare` for a run.json: "classes" (count or None) and "input" (text)."""
        return {"classes": len(meta.get("classes") or []) or None, "input": None}

    # --- evaluation and report ---------------------------------------------------------------------
    def headline(self, metrics: Mapping) -> list[tuple[str, Any]]:
        """What one split's metrics (a metrics.json "test", a baseline's, cv means) lead with, as (label, value) in the
        order the end-of-training summary, `kiln runs`, `kiln compare` and the report show them: the task's typed
        headline (`info.headline`) for the first output kind whose figures these are. Class probabilities follow
        kiln.evaluate.metrics.headline: two classes lead with ROC-AUC and log loss, then accuracy at the stored
        threshold and at 0.5, each named with its threshold."""
        from kiln.evaluate.metrics import headline

        for kind in self.info.returns:
            shown = self.info.headline.get(kind, ())
            if shown and any(m.key in metrics for m in shown):
                return headline(metrics) if kind == "probabilities" else [(m.label, metrics.get(m.key)) for m in shown]
        return headline(metrics) if "accuracy" in metrics or "roc_auc" in metrics else []

    @abc.abstractmethod
    def evaluate(self, run, data: Prepared, cfg) -> dict:
        """metrics.json of a freshly trained run: {"val": {...}, "test": {...}}; may write plots/."""

    def evaluate_run(self, run, data: str | None = None, split: str = "test", out: str | None = None, **options) -> dict:
        """`kiln evaluate RUN`: metrics for one split of the run's data, or for another labelled source."""
        raise self.unsupported("evaluate")

    def split_outputs(self, run, split: str, outputs: bool = True):
        """(targets, model outputs) of one split of the run's own data, or only the targets with `outputs=False`;
        None when the task cannot read the split again (then `kiln evaluate threshold=RULE` asks for a number)."""
        return None

    def predict(self, run, inputs, out: str | None = None, **options) -> list[dict]:
        """`kiln predict RUN INPUTS`: one dict per input."""
        raise self.unsupported("predict")

    def predict_outputs(self, run, inputs, **options):
        """The model's first output (N, ...) as a numpy array for `inputs` (paths, rows), in order."""
        raise self.unsupported("predict")

    def report_sections(self, run, split: str | None, **options) -> list[ReportSection]:
        """The task's parts of report.html, after the spine's summary and learning curves."""
        return []

    def audit(self, data: str, out: str | None = None, progress: bool = True, **options) -> dict:
        """`kiln audit DATA`: problems found in the data, written as out/audit.json and audit.html."""
        raise self.unsupported("audit")

    def command(self, name: str):
        """The task's own handler for a CLI mode whose options are the task's: "audit", "audit restore", "convert",
        "convert verify", "label-issues". A callable `(words, pairs, config) -> exit code`; a mode the task lacks is
        `unsupported`."""
        raise self.unsupported(name)

    # --- tools on a dataset or a run: kiln.audit(fix=), kiln.convert, augment-preview, label-issues, inspect ----------
    def quarantine(self, report: dict) -> Path | None:
        """`audit` with fix=quarantine: move the files the report flagged aside; the manifest (None: nothing moved)."""
        raise self.unsupported("audit fix=quarantine")

    def convert(self, data: str, out: str, cfg, progress: bool = True, **options) -> dict:
        """`kiln.convert`: the source packed into the task's shards, split as `cfg` says; the manifest."""
        raise self.unsupported("convert")

    def augment_preview(self, cfg, out: str | Path | None = None, samples: int = 8, variants: int = 5) -> Path:
        """A PNG grid of training examples, each beside copies with the config's augmentation applied; its path."""
        raise self.unsupported("augment-preview")

    def label_issues(self, run, **options) -> "pd.DataFrame":
        """Training examples whose label is probably wrong, worst first, flagged in an `is_issue` column."""
        raise self.unsupported("label-issues")

    def inspect_model(self, name: str, input_shape=None, classes: int | None = None):
        """The registered model `name` as `kiln inspect NAME` builds it (no weights loaded). Default: built for the
        task's own `example` data, the way the trainer builds it; `input_shape` and `classes` are for tasks whose
        models are built for a given input and class count (images)."""
        from kiln.tasks.models import build_for_inspection

        return build_for_inspection(self, name, input_shape, classes)

    # --- export and serve --------------------------------------------------------------------------
    @abc.abstractmethod
    def signature(self, run) -> Signature:
        """The function every export runtime writes: raw inputs in, named outputs out."""

    def export_model(self, run, format: str):
        """(model, signature) that `format` writes: the run's model and `signature(run)`, unless that runtime
        cannot carry part of the model (then a smaller model, with `Signature.host` and `files` for the rest)."""
        return run.model, self.signature(run)

    @abc.abstractmethod
    def parity_data(self, run, limit: int) -> tuple[str, Any, Any]:
        """(split name, model inputs, targets) the export is compared on (test, else val, else train)."""

    def calibration_data(self, run, n: int):
        """Model inputs for int8 calibration (a sample of the training split)."""
        raise self.unsupported("export quantize=int8")

    @abc.abstractmethod
    def parity(self, reference, candidate, y) -> dict:
        """Figures comparing an export's outputs with the Keras model's on the same inputs.

        Must hold "agreement" (the share that passes, compared with min_agreement), "max_abs_diff", "mean_abs_diff",
        "agreement_rule", "metric", "score" and "keras_score". kiln.export.parity's `class_parity` and `value_parity` give them, named: "agreement_rule" (what agreeing means:
        the same top class, the same decision, within a tolerance) and "metric" / "score" / "keras_score" (the task's
        quality figure for both sides, e.g. "accuracy@0.318", "MAE").
        """

    def parity_for(self, run):
        """The `parity` callable `kiln export` uses for this run (a task binds what the run decides with, e.g. its
        two-class threshold)."""
        return self.parity

    @abc.abstractmethod
    def adapter(self, served) -> Adapter:
        """The serving adapter for a loaded model (kiln.serve.model.ServedModel)."""

    # --- the contract test -----------------------------------------------------------------------------
    @abc.abstractmethod
    def example(self, root: Path, seed: int = 0) -> Example:
        """Write a tiny generated dataset under `root` and say how to train on it and query the server."""

    def demo_plan(self, dest: Path):
        """`kiln demo task=NAME`: write real data that ships in a dependency under `dest` and say how the short
        tour trains on it (a kiln.demo.DemoPlan); kiln/demo.py walks the rest, the same for every task."""
        raise self.unsupported("demo")

    def unsupported(self, command: str) -> TaskError:
        return TaskError(received(command, "task", self.info.name, f"the {self.info.name} task does not support {command}",
                                  f"Tasks: {', '.join(task_names())}"))


TASKS: dict[str, Task] = {}  # registered tasks by name (filled on import of BUILTIN modules)


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register one instance of a Task subclass under `cls.info.name`."""
    TASKS[cls.info.name] = cls()
    return cls


def _load(name: str | None = None) -> None:
    for key, module in BUILTIN.items():
        if (name is None or key == name) and key not in TASKS:
            importlib.import_module(module)


def task_names() -> list[str]:
    """Every registered task name (BUILTIN and any registered from outside)."""
    return sorted(set(BUILTIN) | set(TASKS))


def _aliases() -> dict[str, str]:
    _load()
    return {alias: t.info.name for t in TASKS.values() for alias in t.info.aliases}


def get_task(name: str) -> Task:
    """The registered task named `name` (or one of its aliases); unknown names fail with the closest ones."""
    key = str(name).strip().lower()
    if key in BUILTIN or key in TASKS:
        _load(key)
        return TASKS[key]
    aliases = _aliases()
    if key in aliases:
        return TASKS[aliases[key]]
    names = task_names() + sorted(aliases)
    near = difflib.get_close_matches(key, names, n=3, cutoff=0.4)
    hint = f"Did you mean {' or '.join(near)}" if near else f"Tasks: {', '.join(names)}"
    raise TaskError(received("task", "task", name, "no task is registered under that name", hint))


def infer_task(path: str | None, keys: Mapping[str, Any] | None = None) -> Task:
    """The task whose `claims` is highest for `data=path` and these keys; an error when none claims it."""
    keys = keys or {}
    _load()
    scores = sorted(((t.claims(path, keys), n) for n, t in TASKS.items()), reverse=True)
    if not scores or scores[0][0] <= 0:
        raise TaskError(received("task", "data", path, "no task recognises this data",
                                 f"Name the task with task=NAME ({', '.join(task_names())})"))
    return TASKS[scores[0][1]]


def resolve_task(cfg, path: str | Path | None = None) -> Task:
    """`cfg.task` when it names a task, else the task inferred from the data (`path`, default `cfg.data.path`) and
    the config."""
    name = getattr(cfg, "task", "auto") or "auto"
    if name != "auto":
        return get_task(name)
    return infer_task(str(path) if path is not None else cfg.data.path, cfg.model_dump())


def model_tasks(name: str) -> list[Task]:
    """The registered tasks whose model registry holds `name` (`kiln inspect NAME`, `kiln models`)."""
    _load()
    return [TASKS[t] for t in sorted(TASKS) if name in TASKS[t].models]


def task_of(meta: Mapping) -> Task:
    """The task a run.json or export.json names; files written before tasks existed are image runs."""
    return get_task(meta.get("task", "image"))


__all__ = ["Adapter", "BUILTIN", "CompileSpec", "Example", "ModelEntry", "ModelRegistry", "Prepared", "ReportSection", "Signature",
           "Source", "TASKS", "Task", "TaskError", "TaskInfo", "TensorSpec", "get_task", "infer_task", "model_tasks",
           "register_task", "resolve_task", "task_names", "task_of"]
