"""The table task behind the contract (kiln/tasks/base.py): CSV, TSV or Parquet rows with a
`target=` column -> classification or regression on raw rows, preprocessing inside the model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from kiln.errors import DataError, received
from kiln.tasks.base import ACCURACY, MACRO_F1, MAE, R2, RMSE, CompileSpec, Example, Prepared, Signature, Source, Task, TaskInfo, TensorSpec, register_task
from kiln.tasks.table.config import TableConfig
from kiln.tasks.table.models import MODELS
from kiln.tasks.table.runtime import RUNTIMES

log = logging.getLogger("kiln.table")


@register_task
class TableTask(Task):
    info = TaskInfo(
        name="table", description="classification or regression on the rows of a CSV, TSV or Parquet table",
        sources=("CSV (comma, semicolon or tab; UTF-8, UTF-8 BOM, Latin-1)", "TSV", "Parquet"),
        label_kinds=("classification", "regression"), default_model="auto", monitor="val_loss", mode="min",
        export_formats=("keras", "savedmodel", "tflite", "onnx"), aliases=("classify", "regress", "tabular"),
        resume_keys=("table.target", "table.drop", "table.id", "table.loss"), runtimes=RUNTIMES[1:],
        returns=("probabilities", "value"), headline={"probabilities": (ACCURACY, MACRO_F1), "value": (R2, RMSE, MAE)})
    models = MODELS
    config_section = TableConfig

    # --- which data -----------------------------------------------------------------------------
    def claims(self, path, keys: Mapping[str, Any]) -> int:
        from kiln.tasks.common.tabular import TABLE_SUFFIXES

        if not path or Path(str(path)).suffix.lower() not in TABLE_SUFFIXES:
            return 0
        table = keys.get("table") or {}
        target = table.get("target") if isinstance(table, Mapping) else None
        if Path(str(path)).suffix.lower() in (".parquet", ".pq", ".tsv") or target:
            return 90
        return 2  # a CSV with no target=: above the image task's 1, so the message asks for target= (not path,label)

    def _task_override(self, cfg) -> str:
        return {"classify": "classification", "regress": "regression"}.get(getattr(cfg, "task", "auto"), "auto")

    # --- data -------------------------------------------------------------------------------------
    def read_source(self, cfg) -> Source:
        from kiln.tasks.table.prepare import check_columns, find_column
        from kiln.tasks.common.tabular import read_table

        src = read_table(cfg.data.path, "train")
        check_columns(src.frame, "train")
        find_column(src.frame, cfg.table.target, "target", "train")
        for key in ("drop", "id"):
            for c in getattr(cfg.table, key):
                find_column(src.frame, c, key, "train")
        return Source(rows=src.frame, skipped=src.frame.iloc[0:0], facts=src.describe())

    def analyse(self, source: Source, cfg, model_name: str) -> Prepared:
        from kiln.tasks.table.prepare import assign_splits, features_frame, infer_feature_columns, resolve_target, usable_rows
        from kiln.tasks.table.spec import build_spec

        frame = source.rows
        target = resolve_target(frame, cfg.table.target, self._task_override(cfg), component="train")
        keep = usable_rows(target)
        if not keep.all():
            log.warning("train: %d rows with no target value left out", int((~keep).sum()))
        rows = frame[keep].reset_index().rename(columns={"index": "_row"})
        y = target.y[keep]
        target.y = y
        rows["split"] = assign_splits(rows.drop(columns=["_row"]), target, cfg.data.val_split, cfg.data.test_split, cfg.seed, "train")
        columns = infer_feature_columns(rows.drop(columns=["_row"]), target.name)
        train = (rows["split"] == "train").to_numpy()
        if target.task == "classification" and len(np.unique(y[train])) < 2:
            raise DataError(received("train", "target", target.name, "the training split holds one class", "Add rows of other classes"))
        spec = build_spec(features_frame(rows.drop(columns=["_row"]), target.name), columns, target.name, target.task, train,
                          target.classes, y[train], drop=cfg.table.drop, ids=cfg.table.id)
        text = [f.column for f in spec.features if f.kind == "text" and f.column not in cfg.table.drop]
        if text:  # a text file read as a table: the column that matters would be left out without a word
            raise DataError(received("train", "data", cfg.data.path, f"column {text[0]} holds free text, which a table model leaves out",
                                     f"To classify the text: text={text[0]} target={target.name}; to train the table on the other "
                                     f"columns: drop={','.join(text)}"))
        if not spec.used:
            raise DataError(received("train", "data", cfg.data.path, "no column is usable as a feature", "Check the audit: kiln audit FILE target=COL"))
        extra = {"y": y, "columns": columns}
        if model_name == "auto":  # linear or resnet_plr, by cross-validation on the training rows (kiln/tasks/table/choose.py)
            from kiln.tasks.table.choose import choose_model
            from kiln.tasks.table.spec import encode_rows

            model_name, extra["model_why"] = choose_model(spec, encode_rows(rows[train], spec), y[train], cfg.seed)
        return Prepared(rows=rows, spec=spec, skipped=frame[~keep], classes=target.classes, facts=source.facts,
                        extra=extra, model=model_name)

    def write_data(self, data: Prepared, run_dir: Path) -> None:
        from kiln.io import write_text

        write_text(run_dir / "splits.csv", self.splits_frame(data).to_csv(index=False))

    def splits_frame(self, data: Prepared) -> pd.DataFrame:
        return data.rows[["_row", "split"]].rename(columns={"_row": "row"})

    def batch_size(self, cfg, data: Prepared) -> int:
        """`table.batch_rows` (auto: kiln/tasks/table/auto.py); `data.batch_size` is for images."""
        from kiln.tasks.table.auto import batch_rows

        return batch_rows(cfg, int((data.rows["split"] == "train").sum()))

    def targets(self, rows: pd.DataFrame, spec) -> np.ndarray:
        from kiln.tasks.table.prepare import resolve_target

        return resolve_target(rows, spec.target, spec.task, spec.classes, "evaluate").y

    def make_dataset(self, rows, spec, cfg, training: bool, batch_size: int = 256, **options):
        import tensorflow as tf

        from kiln.tasks.table.spec import encode_rows

        x = encode_rows(rows, spec)
        y = self.targets(rows, spec)
        y = y.astype(np.float32).reshape(-1, 1) if spec.task == "regression" else y.astype(np.int64)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if training:
            ds = ds.shuffle(min(len(rows), 100_000), seed=cfg.seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def resolve_auto(self, cfg, data, model_name: str):  # the rules: kiln/tasks/table/auto.py
        from kiln.tasks.table.auto import resolve_auto

        return resolve_auto(self, cfg, data, model_name)

    # --- model -------------------------------------------------------------------------------------
    def choose_model(self, cfg) -> str:
        if cfg.model.name != "auto":
            self.models.get(cfg.model.name)
        return cfg.model.name

    def build_model(self, name: str, data: Prepared, cfg):
        from kiln.tasks.table.models import auto_model

        spec = data.spec
        name = (data.model or auto_model(data.counts()["train"])) if name == "auto" else name
        k = len(spec.classes) if spec.classes else 1
        prior = None
        if spec.classes:
            y = data.extra["y"][(data.rows["split"] == "train").to_numpy()]
            prior = np.bincount(y, minlength=k) / len(y)
        m, t = cfg.model, cfg.table
        units = [256, 128] if m.units == "auto" else m.units
        return self.models.create(name, spec, k, units=units, batchnorm=m.batchnorm, activation=m.activation, dropout=0.1 if m.dropout == "auto" else m.dropout, l1=m.l1, l2=m.l2, initializer=m.initializer, prior=prior,
                                  width=t.width, blocks=t.blocks, frequencies=t.frequencies, embed_dim=t.embed_dim, sigma=t.sigma,
                                  ensemble_size=t.ensemble_size)

    def custom_model(self, body):
        """`model=FILE.py:build` (kiln/user_model.py): one input per column -> the encodings every table model uses,
        concatenated (N, F) float32 -> your body -> (N, K) probabilities, or (N, 1) standardised then rescaled to the target."""
        def build(spec, num_outputs, **_):
            import keras

            from kiln.tasks.table.features import build_features
            from kiln.tasks.table.models import _body_input
            from kiln.user_model import BuildSpec

            inputs, num, cat = build_features(spec)
            x = _body_input(num, cat)
            value = spec.task == "regression"
            net = body(BuildSpec("table", tuple(x.shape[1:]), "float32", int(num_outputs), "value" if value else "probabilities",
                                 "linear" if value else "softmax", spec.classes, {"columns": [f.column for f in spec.used]}))
            out = net(x)
            if value:
                out = keras.layers.Rescaling(scale=spec.target_std, offset=spec.target_mean, name="prediction")(out)
            return keras.Model(inputs, out, name="custom")

        return build

    def compile_spec(self, data: Prepared, cfg) -> CompileSpec:
        import keras

        from kiln.train.trainer import class_weights

        spec, loss = data.spec, cfg.table.loss
        if spec.task == "classification":
            if loss not in ("auto", "crossentropy"):
                raise DataError(received("train", "table.loss", loss, "a classification target trains with cross-entropy", "Use loss=auto"))
            weights = None
            if cfg.train.class_weight == "balanced":
                weights = class_weights(data.extra["y"][(data.rows["split"] == "train").to_numpy()], len(spec.classes))
            return CompileSpec(keras.losses.SparseCategoricalCrossentropy(), ["accuracy"], "val_loss", "min", weights)
        if loss == "crossentropy":
            raise DataError(received("train", "table.loss", loss, "a regression target trains with mse, mae or huber", "Use loss=mse"))
        lossfn = {"auto": "mse", "mse": "mse", "mae": "mae", "huber": keras.losses.Huber(delta=spec.target_std)}[loss]
        return CompileSpec(lossfn, [keras.metrics.RootMeanSquaredError(name="rmse"), keras.metrics.MeanAbsoluteError(name="mae")], "val_loss", "min")

    def describe(self, model_name, model, data) -> str:
        c, spec = data.counts(), data.spec
        line = (f"kiln: training {model_name} ({model.count_params():,} parameters) on {c['train']} rows x {len(spec.used)} columns "
                f"({len(spec.features) - len(spec.used)} left out), {spec.task}{f' of {len(spec.classes)} classes' if spec.classes else ''}, "
                f"{c['val']} val / {c['test']} test")
        dropped = [f"{f.column} ({f.reason})" for f in spec.features if f.encoding == "dropped"]
        return line + (f"\nkiln: left out of the model: {'; '.join(dropped)}" if dropped else "")

    # --- run folder --------------------------------------------------------------------------------
    def run_meta(self, data: Prepared) -> dict:
        return {"task": "table", "table": data.spec.to_dict(), "classes": data.spec.classes, "source": data.facts,
                "skipped": int(len(data.skipped))}

    def load_spec(self, meta: Mapping):
        """Without Keras: kiln.io.load_keras registers the table layers (kiln/tasks/base.py LAYERS)."""
        from kiln.tasks.table.spec import TableSpec

        return TableSpec.from_dict(meta["table"])

    # --- evaluation ----------------------------------------------------------------------------------
    def returns(self, meta: Mapping) -> str:
        return "probabilities" if meta.get("classes") else "value"

    def after_fit(self, run, data: Prepared, cfg) -> dict:
        """Two classes: the decision threshold chosen on val (cfg.evaluate.threshold), for run.json."""
        if data.spec.classes and len(data.spec.classes) == 2 and len(data.split("val")):
            from kiln.evaluate.threshold import learned_threshold

            val = data.split("val")
            return learned_threshold(data.spec.classes, self.targets(val, data.spec), self.predict_outputs(run, val),
                                     cfg.evaluate.threshold, y_train=data.extra["y"][(data.rows["split"] == "train").to_numpy()])
        return {}

    def verdict_advice(self, verdict: dict) -> str:
        """What to try when the run loses to a baseline (kiln/evaluate/verdict.py)."""
        if verdict["baseline"] == "hist_gradient_boosting":
            return ("Try model=tabm (or resnet_plr) with a longer run (epochs=, patience=), or use scikit-learn's "
                    "HistGradientBoosting for this table: on this split trees fit it better")
        if verdict["baseline"] == "linear":
            return "Try model=linear: on this split a linear model fits the table as well or better"
        return "The model has learned less than predicting the training mean or the majority class: check the target and the audit (kiln audit)"

    def evaluate(self, run, data: Prepared, cfg) -> dict:
        from kiln.tasks.table.evaluate import cross_validate, evaluate_fresh

        metrics = evaluate_fresh(self, run, data, cfg)
        if cfg.table.cv >= 2:  # K more models, scored on held-out folds of train+val: the spread of the score
            metrics["cv"] = cross_validate(self, data, cfg, run.meta["model"], run.path)
        return metrics

    def report_sections(self, run, split: str | None, **options) -> list:
        """The table's parts of report.html (kiln/tasks/table/report.py): a summary line first, then metrics beside
        the baselines, cv, per-column decisions, importance, the test plots and the audit (the spine draws the curves)."""
        import html

        from kiln.tasks.base import ReportSection
        from kiln.tasks.table.report import sections

        meta = run.meta
        head = (f'<h2 id="summary">Summary</h2>'
                f"<p>{html.escape(str(meta['source']['path']))} · target {html.escape(meta['table']['target'])}"
                f" · {meta['table']['task']} · model {html.escape(meta['model'])} · "
                + " / ".join(f"{n} {k}" for k, n in meta["counts"].items()) + f" rows · {meta.get('train_seconds')} s</p>")
        parts = [ReportSection("summary", "summary", head)]
        for i, (title, body) in enumerate(sections(run, options.get("audit"))):
            parts.append(ReportSection(f"table-{i}", title.split(" (")[0].lower(), f'<h2 id="table-{i}">{html.escape(title)}</h2>{body}'))
        return parts

    def evaluate_run(self, run, data: str | None = None, split: str = "test", out: str | None = None, **options) -> dict:
        from kiln.tasks.table.evaluate import evaluate_file

        return evaluate_file(self, run, data, split, out, **options)

    def evaluate_split_rows(self, run, split: str):
        """(targets, model outputs) of one split of the run's data (None when it is empty)."""
        return self.split_outputs(run, split)

    def split_outputs(self, run, split: str, outputs: bool = True):
        from kiln.tasks.table.evaluate import split_rows

        rows = split_rows(run, split)
        if not len(rows):
            return None
        y = self.targets(rows, self.load_spec(run.meta))
        return (y, self.predict_outputs(run, rows)) if outputs else y

    def predict(self, run, inputs, out: str | None = None, runtime: str = "auto", **options) -> list[dict]:
        from kiln.tasks.table.evaluate import predict_file

        return predict_file(self, run, inputs, out, runtime)

    def predict_outputs(self, run, inputs, **options):
        """(N, K) probabilities or (N, 1) predictions for a frame of raw rows."""
        from kiln.tasks.table.spec import encode_rows, predict_inputs

        spec = self.load_spec(run.meta)
        if len(inputs) == 0:
            return np.zeros((0, len(spec.classes) if spec.classes else 1), np.float32)
        return predict_inputs(run.model, encode_rows(inputs, spec))

    def audit(self, data: str, out: str | None = None, progress: bool = True, target: str | None = None, task: str = "auto",
              **options) -> dict:
        from kiln.tasks.table.audit import audit_table, write_audit
        from kiln.tasks.table.prepare import check_columns, find_column, resolve_target
        from kiln.tasks.common.tabular import read_table

        src = read_table(data, "audit")
        frame = src.frame
        y = regression = None
        if target is not None:
            find_column(frame, target, "target", "audit")
            t = resolve_target(frame, target, {"classify": "classification", "regress": "regression"}.get(task, task), component="audit")
            y, regression = t.y, t.task == "regression"
        report = audit_table(frame, target, regression, y, source=src.describe())
        try:
            check_columns(frame, "audit")
        except DataError as err:
            report["problems"].append({"column": None, "kind": "name_clash", "severity": "error", "detail": str(err)})
        write_audit(report, out or "runs/audit")
        report["out"] = str(out or "runs/audit")
        return report

    def command(self, name: str):
        """audit (target=, task=, strict=, ignore=); tables have no shard format, so no convert."""
        from kiln.tasks.table.commands import COMMANDS

        if name not in COMMANDS:
            raise self.unsupported(name)
        return COMMANDS[name]

    # --- export and serve ----------------------------------------------------------------------------
    def signature(self, run) -> Signature:
        spec = self.load_spec(run.meta)
        inputs = tuple(TensorSpec(f.input, "string" if f.encoding == "category" else "float32", (1,)) for f in spec.used)
        if spec.classes:
            out = (TensorSpec("probabilities", "float32", (len(spec.classes),)),)
        else:
            out = (TensorSpec("prediction", "float32", (1,)),)

        def call(model, x):
            return {out[0].name: model(x)}

        return Signature(inputs, out, call, labels=spec.classes, meta={"table": spec.to_dict(), "columns": {f.input: f.column for f in spec.used}})

    def parity_data(self, run, limit: int):
        from kiln.tasks.table.evaluate import split_rows
        from kiln.tasks.table.spec import encode_rows

        spec = self.load_spec(run.meta)
        for name in ("test", "val", "train"):
            rows = split_rows(run, name)
            if len(rows):
                rows = rows.iloc[:limit]
                return name, encode_rows(rows, spec), self.targets(rows, spec)
        raise DataError(received("export", "run", run.path, "the run has no rows to compare on", "Train again"))

    def calibration_data(self, run, n: int):
        from kiln.tasks.table.evaluate import split_rows
        from kiln.tasks.table.spec import encode_rows

        return encode_rows(split_rows(run, "train").iloc[:n], self.load_spec(run.meta))

    def parity(self, reference, candidate, y, threshold: float | None = None) -> dict:
        """Classes: the same decision (at the run's two-class threshold, else argmax) and accuracy at it; regression:
        every value within 1e-3 of the target's spread, and the MAE of both (kiln.export.parity)."""
        from kiln.evaluate.threshold import apply_threshold
        from kiln.export.parity import class_parity, value_parity

        ref, cand = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
        if ref.shape[-1] == 1:
            return value_parity(ref, cand, y)
        figures = class_parity(ref, cand, y)
        if ref.shape[-1] == 2:  # the decision the run makes: at its threshold
            dr, dc = apply_threshold(ref, threshold), apply_threshold(cand, threshold)
            figures.update({"agreement": float(np.mean(dr == dc)), "agreement_rule": "same decision",
                            "metric": f"accuracy@{0.5 if threshold is None else threshold:.3g}",
                            "score": float(np.mean(dc == y)), "keras_score": float(np.mean(dr == y))})
        return figures

    def parity_for(self, run):
        from functools import partial

        from kiln.evaluate.threshold import run_threshold

        return partial(self.parity, threshold=run_threshold(run.meta))

    def adapter(self, served):
        from kiln.tasks.table.adapter import TableAdapter

        return TableAdapter(served)

    def demo_plan(self, dest: Path):
        from kiln.tasks.table.demo import demo_plan

        return demo_plan(dest)

    def example(self, root: Path, seed: int = 0) -> Example:
        from kiln.tasks.table.synth import write_example

        path, row = write_example(Path(root), seed)
        rows = pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=["label"]).iloc[:3]
        return Example(overrides={"data": str(path), "table.target": "label", "train.epochs": 3, "model": "dnn"},
                       request_path="/predict", request=row, predict_inputs=rows)


__all__ = ["TableTask"]
