"""The values that flow between a task's stages, through the spine: rows read (`Source`), rows split with
their spec (`Prepared`), what compile receives (`CompileSpec`), the exported function (`Signature` of
`TensorSpec`s), report parts (`ReportSection`) and the contract test's data (`Example`).

Kept apart from kiln/tasks/base.py (which re-exports every name) so the contract itself stays one screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

if TYPE_CHECKING:  # only for annotations: importing them here would pull in TensorFlow
    import pandas as pd


@dataclass
class Source:
    """Rows read from `data.path` and checked, before any split: nothing in the user's data changes.

    `rows` holds one row per example (for images: path, label, split when the source has one).
    `skipped` holds the rows left out, each with an `error` column saying why; `facts` is what the
    checks measured (image sizes, column types) for `analyse` to choose defaults from.
    """

    rows: "pd.DataFrame"
    skipped: "pd.DataFrame"
    facts: Any = None
    extra: dict = field(default_factory=dict)  # task-owned (e.g. a TFRecord shard source)


@dataclass
class Prepared:
    """Rows with their split (train | val | test) and the `spec` the model is built from.

    `rows` must have a "split" column. `spec` has `to_dict()`; the task stores it in run.json through
    `run_meta` and reads it back with `load_spec`, so evaluate, export and serve see what training saw.
    `classes` is the label vocabulary for classification tasks (None otherwise).
    """

    rows: "pd.DataFrame"
    spec: Any
    skipped: "pd.DataFrame"
    classes: list[str] | None = None
    facts: Any = None
    extra: dict = field(default_factory=dict)  # task-owned; also where after_fit leaves figures for evaluate
    outputs: dict = field(default_factory=dict)  # split -> the model's first output already computed (the trainer
    # leaves val's from the model val chose before a refit trained on val); evaluate uses them instead of predicting
    model: str | None = None  # the registered model `model=auto` became once the data was seen (None: choose_model's)

    def split(self, name: str) -> "pd.DataFrame":
        return self.rows[self.rows["split"] == name]

    def counts(self) -> dict[str, int]:
        return {s: int((self.rows["split"] == s).sum()) for s in ("train", "val", "test")}


# What a task's model returns, in words the spine reads (summary lines, curves, export parity, serving answers).
OUTPUT_KINDS = ("probabilities", "value", "interval", "score_flag", "sample", "boxes", "mask")


@dataclass(frozen=True)
class Metric:
    """A headline metric of a task: its metrics.json key, how people write it, and which way is better.
    `history`: the history.csv column that tracks it while training (None: only measured after training)."""

    key: str
    label: str
    direction: Literal["max", "min"]
    history: str | None = None

    def better(self, a: float, b: float) -> bool:
        """Whether `a` is better than `b`."""
        return a > b if self.direction == "max" else a < b


ACCURACY = Metric("accuracy", "accuracy", "max", "accuracy")
MACRO_F1 = Metric("macro_f1", "macro F1", "max")
R2, RMSE, MAE = Metric("r2", "R2", "max"), Metric("rmse", "RMSE", "min", "rmse"), Metric("mae", "MAE", "min", "mae")


@dataclass
class CompileSpec:
    """What `model.compile` receives besides the optimizer, and what the callbacks watch."""

    loss: Any  # a keras loss (object or name)
    metrics: list  # keras metrics, passed by keyword
    monitor: str  # the monitored metric when the user kept train.monitor's default ("val_" prefix included)
    mode: Literal["min", "max"] = "min"
    class_weight: dict | None = None  # passed to fit


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output of an exported model; `shape` leaves out the batch axis (None: any size)."""

    name: str
    dtype: str  # numpy dtype name: "uint8", "float32", "int64", "string"
    shape: tuple = ()


@dataclass
class Signature:
    """The exported function: raw inputs in (preprocessing inside the graph), named outputs out.

    `call(model, inputs)` maps a dict of input tensors (names of `inputs`) to a dict of output tensors
    (names of `outputs`); every runtime traces it (keras wraps it in a Functional model, savedmodel and
    onnx in a tf.function). The first output is what predictors return and parity compares.
    `meta` goes into export.json as is (e.g. the image spec), `labels` into labels.txt.
    `host` and `files` are for an export that leaves a step outside the model file (a tokenizer a runtime
    cannot carry): `host(raw inputs) -> the file's inputs` runs before the runtime in the parity check, and
    `files` ({name: text}) are written beside the model file (Task.export_model).
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    call: Callable[[Any, dict], dict]
    labels: list[str] | None = None
    meta: dict = field(default_factory=dict)
    host: Callable[[Any], Any] | None = None
    files: dict = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    def to_dict(self) -> dict:
        def one(t: TensorSpec) -> dict:
            return {"name": t.name, "dtype": t.dtype, "shape": [None, *t.shape]}

        return {"inputs": [one(t) for t in self.inputs], "outputs": [one(t) for t in self.outputs]}

    @classmethod
    def from_dict(cls, manifest: Mapping) -> "Signature":
        """The tensors of an export.json ("inputs", else its one "input"; "output"), without `call`: enough
        for a runtime to load and feed the export."""
        def one(d: Mapping) -> TensorSpec:
            return TensorSpec(d["name"], d["dtype"], tuple(d["shape"][1:]))

        inputs = manifest.get("inputs") or [manifest["input"]]
        outputs = manifest.get("outputs") or [manifest["output"]]

        def no_call(model, inputs):
            raise TypeError("a Signature read from export.json describes tensors only")

        return cls(tuple(one(d) for d in inputs), tuple(one(d) for d in outputs), no_call, manifest.get("classes"))


@dataclass
class ReportSection:
    """One part of report.html: its anchor id, its label in the page's navigation and self-contained HTML
    (an <h2 id=...> heading first, images embedded)."""

    id: str
    title: str
    html: str
    in_nav: bool = True


@dataclass
class Example:
    """A tiny generated dataset for the contract test: train on it in seconds, then export and serve.

    `overrides` are config keys (data= included) that train a tiny model on it; `request` is one
    JSON body for `request_path` on the server that the adapter must answer with 200.
    """

    overrides: dict
    request_path: str
    request: dict
    predict_inputs: list = field(default_factory=list)  # what `Run.predict` accepts (paths, rows)


__all__ = ["ACCURACY", "MACRO_F1", "MAE", "OUTPUT_KINDS", "R2", "RMSE", "CompileSpec", "Example", "Metric", "Prepared", "ReportSection", "Signature", "Source", "TensorSpec"]
