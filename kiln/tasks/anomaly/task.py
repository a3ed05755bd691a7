"""The anomaly task behind the contract (kiln/tasks/base.py): an autoencoder trained on normal rows of a table or
normal windows of a sensor series; its score is the reconstruction error and its flag the score above a threshold
chosen on val by a stated rule (after_fit). Compared with PCA, Isolation Forest and LOF on the same split."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from kiln.errors import ConfigError, DataError, received
from kiln.tasks.anomaly.config import AnomalyConfig
from kiln.tasks.anomaly.models import MODELS
from kiln.tasks.base import CompileSpec, Example, Metric, Prepared, Source, Task, TaskInfo, register_task

log = logging.getLogger("kiln.anomaly")

ROC_AUC, PR_AUC, F1 = Metric("roc_auc", "ROC-AUC", "max"), Metric("pr_auc", "PR-AUC", "max"), Metric("f1", "F1", "max")
FPR, SCORE = Metric("fpr", "FPR at threshold", "min"), Metric("score_normal", "mean normal score", "min", "loss")


@register_task
class AnomalyTask(Task):
    info = TaskInfo(
        name="anomaly", description="anomaly detection: an autoencoder trained on normal table rows, series windows or images scores reconstruction error",
        sources=("CSV / TSV / Parquet rows (label= marks anomalies for val / test)", "a series file with time= (windows are scored)",
                 "an image folder (the sub-folder anomaly marks anomalies)"),
        label_kinds=("anomaly",), default_model="dense", monitor="val_loss", mode="min",
        export_formats=("keras", "savedmodel", "tflite", "onnx"), aliases=("outlier", "novelty"),
        resume_keys=tuple(f"anomaly.{k}" for k in ("label", "anomaly_label", "drop", "time", "time_format", "columns", "window", "stride",
                                                      "size", "grey", "latent", "width", "denoise", "beta", "error")), target="none", returns=("score_flag",),
        headline={"score_flag": (ROC_AUC, PR_AUC, F1, FPR)})
    models = MODELS
    config_section = AnomalyConfig

    def headline_metrics(self, meta: Mapping) -> tuple[Metric, ...]:
        """ROC-AUC, PR-AUC, F1 when the data marks anomalies (label=); else the FPR at the threshold and the mean normal score."""
        return (ROC_AUC, PR_AUC, F1, FPR) if (meta.get("anomaly") or {}).get("label") else (FPR, SCORE)

    def headline(self, metrics: Mapping) -> list:
        """(label, value) a split's metrics lead with: ROC-AUC, PR-AUC, F1, FPR where the split holds both kinds, else
        the FPR at the threshold and the mean normal score (a baseline's figures: its ROC-AUC and PR-AUC)."""
        shown = (ROC_AUC, PR_AUC, F1, FPR) if "roc_auc" in metrics else (FPR, SCORE)
        return [(m.label, metrics[m.key]) for m in shown if metrics.get(m.key) is not None]

    def claims(self, path, keys: Mapping[str, Any]) -> int:
        return 0  # any table could be normal data: name the task with task=anomaly

    # --- data -------------------------------------------------------------------------------------
    def read_source(self, cfg) -> Source:
        from kiln.tasks.anomaly.data import prepare_series, prepare_table
        from kiln.tasks.anomaly.threshold import needs_labels

        a = cfg.anomaly
        if needs_labels(a.rule) and not a.label:
            raise ConfigError(received("train", "rule", a.rule, "the rule needs labelled anomalies in val and no label= column is given",
                                       "Pass label=COLUMN, or a rule without labels: rule=q0.99, mean+3std, mad, fpr<=0.01"))
        from kiln.tasks.anomaly.data import prepare_image

        prepare = prepare_image if cfg.data.path and Path(str(cfg.data.path)).expanduser().is_dir() else prepare_series if a.time else prepare_table
        rows, spec = prepare(cfg, "train")
        return Source(rows=rows, skipped=rows.iloc[0:0], facts={"path": str(cfg.data.path)}, extra={"spec": spec})

    def analyse(self, source: Source, cfg, model_name: str) -> Prepared:
        spec = source.extra["spec"]
        auto = {"series": "conv1d", "image": "conv2d", "table": "dense"}[spec.kind]
        model = auto if model_name == "dense" and cfg.model.name == "auto" else model_name
        for name, kind, fix in (("conv1d", "series", "Pass time=COLUMN"), ("conv2d", "image", "Pass an image folder")):
            if model == name and spec.kind != kind:
                raise ConfigError(received("train", "model", name, f"{name} reads {kind} data", f"{fix}, or model=dense or vae"))
        data = Prepared(rows=source.rows, spec=spec, skipped=source.skipped, facts=source.facts, model=model)
        data.extra["counts"] = self._counts(data)
        if data.extra["counts"]["train"] == 0:
            raise DataError(received("train", "data", cfg.data.path, "no normal training example", "Give train normal rows"))
        return data

    def _counts(self, data) -> dict:
        if data.spec.kind in ("table", "image"):
            r = data.rows
            return {s: int(((r["split"] == s) & ~((s == "train") & (r["_anomaly"] == 1))).sum()) for s in ("train", "val", "test")}
        from kiln.tasks.anomaly.data import series_windows

        return {s: int(len(series_windows(data.rows, data.spec, s)[2])) for s in ("train", "val", "test")}

    def write_data(self, data: Prepared, run_dir: Path) -> None:
        from kiln.io import write_text

        write_text(run_dir / "splits.csv", self.splits_frame(data).to_csv(index=False))

    def splits_frame(self, data: Prepared):
        r = data.rows
        if data.spec.kind == "table":
            return r[["_row", "split", "_anomaly"]].rename(columns={"_row": "row", "_anomaly": "anomaly"})
        if data.spec.kind == "image":
            return r[["path", "class", "split", "_anomaly"]].rename(columns={"_anomaly": "anomaly"})
        out = r[["time", "split", "_anomaly"]].rename(columns={"_anomaly": "anomaly"}).copy()
        out["time"] = out["time"].astype(str)
        return out

    def batch_size(self, cfg, data: Prepared) -> int:
        b = cfg.anomaly.batch_rows
        return (64 if data.extra["counts"]["train"] < 20_000 else 256) if b == "auto" else int(b)

    def make_dataset(self, rows, spec, cfg, training: bool, batch_size: int = 64, **options):
        """(inputs, zeros) of the normal examples in `rows` (a Prepared's rows of one split; series: whole frame + split=)."""
        import tensorflow as tf

        from kiln.tasks.anomaly.evaluate import _count, fresh_split

        x, _ = fresh_split(Prepared(rows=rows, spec=spec, skipped=rows.iloc[0:0]), options.get("split", "train"), training=True)
        ds = tf.data.Dataset.from_tensor_slices((x, np.zeros((_count(x), 1), np.float32)))
        if training:
            ds = ds.shuffle(min(_count(x), 100_000), seed=cfg.seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def datasets(self, data: Prepared, cfg, run_dir: Path, batch_size: int):
        import math

        n = data.extra["counts"]
        train = self.make_dataset(data.rows, data.spec, cfg, True, batch_size, split="train")
        val = self.make_dataset(data.rows, data.spec, cfg, False, batch_size, split="val") if n["val"] else None
        return train, val, int(math.ceil(n["train"] / batch_size))

    def resolve_auto(self, cfg, data, model_name: str):
        """epochs=auto: about 3,000 steps in 20-200 epochs; patience=auto: 10; refit=auto: off (val places the threshold)."""
        from kiln.config.load import _flatten, load_config
        from kiln.train.auto import Decision

        t, out = cfg.train, []
        steps = max(1, -(-data.extra["counts"]["train"] // self.batch_size(cfg, data)))
        if t.epochs == "auto":
            out.append(Decision("train.epochs", int(np.clip(3000 // steps, 20, 200)), f"about 3,000 steps of {steps} an epoch"))
        if t.patience == "auto":
            out.append(Decision("train.patience", 10, "ten epochs without a lower val reconstruction error"))
        if t.refit == "auto":
            out.append(Decision("train.refit", False, "val normal rows place the threshold, so the model never trains on them"))
        if data.spec.kind == "series" and cfg.anomaly.window == "auto":
            out.append(Decision("anomaly.window", data.spec.window, "32 steps, fewer for a short series"))
        flat = _flatten(cfg.model_dump(mode="json"))
        flat.update({d.key: d.value for d in out})
        return load_config(overrides=flat), out

    # --- model -------------------------------------------------------------------------------------
    def build_model(self, name: str, data: Prepared, cfg):
        a, m = cfg.anomaly, cfg.model
        return self.models.create(name, data.spec, units=m.units, latent=a.latent, denoise=a.denoise, beta=a.beta, width=a.width,
                                  dropout=0.0 if m.dropout == "auto" else m.dropout)

    def compile_spec(self, data: Prepared, cfg) -> CompileSpec:
        from kiln.tasks.anomaly.layers import MeanError

        return CompileSpec(MeanError(), [], "val_loss", "min")

    def compile(self, model, optimizer, compiled: CompileSpec, cfg) -> None:
        """A VAE computes its own loss (reconstruction + beta x KL) in its train_step; the others train on MeanError."""
        from kiln.tasks.anomaly.layers import VAE

        if isinstance(model, VAE):
            model.compile(optimizer=optimizer, jit_compile=False)
        else:
            super().compile(model, optimizer, compiled, cfg)

    def describe(self, model_name, model, data) -> str:
        n, s = data.extra["counts"], data.spec
        what = {"series": lambda: f"windows of {s.window} x {len(s.columns)}", "image": lambda: f"images of {s.size} x {s.size} x {s.channels}",
                "table": lambda: f"rows x {len(s.table_spec.used)} columns"}[s.kind]()
        return (f"kiln: training {model_name} ({model.count_params():,} parameters) on {n['train']:,} normal {what}, "
                f"{n['val']:,} val / {n['test']:,} test")

    def after_fit(self, run, data: Prepared, cfg) -> dict:
        """`normalize` (auto: tables only; measured in BENCHMARKS.md): each feature's error divided by its mean on normal
        training rows (a weight inside the model);
        then the threshold from val scores by `anomaly.rule`, with what it means, for run.json ("threshold", "threshold_rule")."""
        from kiln.tasks.anomaly.evaluate import _count, errors, fresh_split, reduce
        from kiln.tasks.anomaly.threshold import choose

        normalize = cfg.anomaly.normalize if cfg.anomaly.normalize != "auto" else data.spec.kind == "table"
        if normalize:  # inside the model: every export and the server score the same way
            from kiln.tasks.anomaly.layers import error_layer

            xt, _ = fresh_split(data, "train", training=True)
            mean = errors(run.model, xt).mean(0)
            layer = error_layer(run.model)
            layer.scale.assign((1.0 / np.maximum(mean, 0.01 * float(mean.mean()) + 1e-12)).astype(np.float32))
        x, y = fresh_split(data, "val")
        if not _count(x):
            log.warning("anomaly: val is empty, so the threshold is placed on the training scores (q0.99)")
            x, y = fresh_split(data, "train", training=True)
        value, details = choose(reduce(errors(run.model, x), data.spec), y, cfg.anomaly.rule)
        print(f"kiln: threshold {value:.4g} ({details['rule']}): {details['meaning']}", flush=True)
        return {"threshold": value, "threshold_rule": details}

    # --- run folder --------------------------------------------------------------------------------
    def run_meta(self, data: Prepared) -> dict:
        return {"task": "anomaly", "anomaly": data.spec.to_dict(), "classes": None, "source": data.facts, "examples": data.extra["counts"]}

    def load_spec(self, meta: Mapping):
        import kiln.tasks.anomaly.layers  # noqa: F401  (registers the layers model.keras refers to)
        from kiln.tasks.anomaly.data import AnomalySpec

        return AnomalySpec.from_dict(meta["anomaly"])

    def describe_run(self, meta: Mapping) -> dict:
        s = meta.get("anomaly") or {}
        what = {"series": f"windows {s.get('window')}x{len(s.get('columns') or [])}", "image": f"images {s.get('size')}x{s.get('size')}x{s.get('channels')}"}.get(s.get("kind"), "table rows")
        return {"classes": None, "input": what}

    # --- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, run, data: Prepared, cfg) -> dict:
        from kiln.tasks.anomaly.evaluate import evaluate_fresh

        return evaluate_fresh(run, data, cfg)

    def evaluate_run(self, run, data: str | None = None, split: str = "test", out: str | None = None, **options) -> dict:
        from kiln.tasks.anomaly.evaluate import evaluate_file

        return evaluate_file(run, data, split, out, **options)

    def predict(self, run, inputs, out: str | None = None, **options) -> list[dict]:
        from kiln.tasks.anomaly.evaluate import predict_file

        return predict_file(run, inputs, out)

    def predict_outputs(self, run, inputs, **options):
        """Scores (N,) for model inputs (a table's encoded columns, or windows (N, W, C))."""
        from kiln.tasks.anomaly.evaluate import errors, reduce

        return reduce(errors(run.model, inputs), run.spec)

    def report_sections(self, run, split, **options):
        from kiln.tasks.anomaly.report import sections

        return sections(run)

    # --- export and serve ----------------------------------------------------------------------------
    def signature(self, run):
        from kiln.tasks.anomaly.serve import signature

        return signature(run)

    def parity_data(self, run, limit: int):
        from kiln.export.parity import take
        from kiln.tasks.anomaly.evaluate import _count, run_split

        for split in ("test", "val", "train"):
            x, y, _ = run_split(run, split)
            if _count(x):
                return split, take(x, slice(0, limit)), y[:limit]
        raise DataError(received("export", "run", run.path, "the run's data has no row to compare on", "Keep the training file where it was"))

    def calibration_data(self, run, n: int):
        from kiln.export.parity import take
        from kiln.tasks.anomaly.evaluate import run_split

        return take(run_split(run, "train")[0], slice(0, n))

    def parity(self, reference, candidate, y) -> dict:
        """Scores within 1e-3 of the reference scores' spread; the quality figure is the score's MAE against the reference."""
        from kiln.export.parity import value_parity

        ref = np.asarray(reference, np.float64)
        return value_parity(ref, candidate, ref)

    def adapter(self, served):
        from kiln.tasks.anomaly.serve import adapter

        return adapter(served)

    def example(self, root: Path, seed: int = 0) -> Example:
        import pandas as pd

        from kiln.tasks.anomaly.synth import write_example

        path, row = write_example(Path(root), seed)
        rows = pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=["label"]).iloc[:3]
        return Example(overrides={"data": str(path), "anomaly.label": "label", "train.epochs": 3}, request_path="/predict",
                       request=row, predict_inputs=rows)


__all__ = ["AnomalyTask"]
