"""The series task behind the contract (kiln/tasks/base.py): a CSV or Parquet file with `time=`, `target=` and
`horizon=` -> a direct multi-step forecaster on raw windows, scalers inside, judged by rolling-origin
backtests beside naive, seasonal naive, drift and Holt-Winters on the same windows. Runs on the spine's
trainer, export and server; every method hands over to one module of this folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from kiln.errors import DataError, received
from kiln.tasks.base import MAE, CompileSpec, Example, Metric, Prepared, Source, Task, TaskInfo, register_task
from kiln.tasks.series.config import SeriesConfig
from kiln.tasks.series.models import MODELS

log = logging.getLogger("kiln.series")

# epochs=auto's step budget when a linear model trains (model=linear, or a member of the default ensemble): the
# neighbouring lags of a smooth series are nearly collinear, so gradient descent crawls; from random weights it
# reached its best val loss on Seattle's hourly windows at epoch 176 of 107 steps. It now starts from least squares
# (least_squares.py), and the budget stays: with it, model=auto scored Seattle 0.448 / 0.447 / 0.446 and CO2
# 0.452 / 0.465 / 0.459 (seeds 0-2); with 4,000 steps and patience 15, 0.449 / 0.448 / 0.447 and 0.455 / 0.473 /
# 0.463 in about half the time.
LINEAR_STEPS = 20_000
# patience=auto with a linear model: 40 epochs instead of 15. Measured with model=auto (linear + dense), seeds 0-2:
# test MASE Seattle hourly 0.465 -> 0.463, CO2 weekly 0.496 -> 0.470 (runs of 145-190 epochs instead of 42-132).
LINEAR_PATIENCE = 40


MASE, SMAPE = Metric("mase", "MASE", "min"), Metric("smape", "sMAPE %", "min")


@register_task
class SeriesTask(Task):
    info = TaskInfo(
        name="series", description="time-series forecasting: a timestamped CSV or Parquet column -> the next horizon steps",
        sources=("CSV / Parquet with time=, target=, horizon= (series= for many series, covariates= for past-only inputs)",),
        label_kinds=("forecast",), default_model="ensemble", monitor="val_loss", mode="min",
        export_formats=("keras", "savedmodel", "tflite", "onnx"), aliases=("forecast",),
        resume_keys=("series.time", "series.target", "series.horizon", "series.lookback", "series.season", "series.series",
                     "series.covariates", "series.fill", "series.quantiles"),
        returns=("value", "interval"), headline={kind: (MASE, MAE, SMAPE) for kind in ("value", "interval")},
        runtimes=("keras", "onnx"))  # kiln/export/runtime.py
    models = MODELS
    config_section = SeriesConfig

    def returns(self, meta: Mapping) -> str:
        return "interval" if (meta.get("series") or {}).get("quantiles") else "value"

    # --- which data -----------------------------------------------------------------------------
    def claims(self, path, keys: Mapping[str, Any]) -> int:
        """95 for a table file with time= and horizon= (above the table task's 90 for target=); 91 with time= alone
        (only a series has a time column: `kiln audit FILE time=` is the timestamp audit); else 0."""
        from kiln.tasks.series.source import SUFFIXES

        s = keys.get("series") or {}
        if not path or Path(str(path)).suffix.lower() not in SUFFIXES or not isinstance(s, Mapping):
            return 0
        return (95 if s.get("horizon") else 91) if s.get("time") else 0

    def command(self, name: str):
        """audit (time=, target=, series=, time_format=, out=, strict=); series have no shard format."""
        from kiln.tasks.series.commands import COMMANDS

        if name not in COMMANDS:
            raise self.unsupported(name)
        return COMMANDS[name]

    # --- data -------------------------------------------------------------------------------------
    def read_source(self, cfg) -> Source:
        from kiln.tasks.series.prepare import prepare

        frame, spec, report, fill = prepare(cfg, "train")
        return Source(rows=frame, skipped=frame.iloc[0:0], facts=report, extra={"spec": spec, "fill": fill})

    def analyse(self, source: Source, cfg, model_name: str) -> Prepared:
        spec = source.extra["spec"]
        data = Prepared(rows=source.rows, spec=spec, skipped=source.skipped, facts=source.facts, extra={"fill": source.extra["fill"]})
        w = self.windows(data)
        counts = {s: len(w.starts((s,))) for s in ("train", "val", "test")}
        if counts["train"] == 0:
            raise DataError(received("train", "data", cfg.data.path, "no training window is free of missing values",
                                     "Train with fill=interpolate (or ffill / zero)"))
        data.extra["windows"] = counts
        return data

    def windows(self, data: Prepared):
        from kiln.tasks.series.windows import Windows

        if "w" not in data.extra:
            data.extra["w"] = Windows(data.rows, data.spec)
        return data.extra["w"]

    def write_data(self, data: Prepared, run_dir: Path) -> None:
        from kiln.io import write_json, write_text

        write_text(run_dir / "splits.csv", self.splits_frame(data).to_csv(index=False))
        write_json(run_dir / "audit.json", {**data.facts, "fill": data.extra["fill"]})

    def splits_frame(self, data: Prepared):
        """One row per series and stretch: first and last timestamp, steps (the rows themselves are the file's)."""
        g = data.rows.groupby(["series", "split"], sort=False)["time"]
        out = g.agg(["min", "max", "size"]).reset_index().rename(columns={"min": "start", "max": "end", "size": "steps"})
        out["split"] = out["split"].astype(str)
        out[["start", "end"]] = out[["start", "end"]].astype(str)
        return out

    def _batch(self, cfg, n: int) -> int:
        b = cfg.series.batch_rows
        return (64 if n < 20_000 else 256) if b == "auto" else int(b)

    def make_dataset(self, rows, spec, cfg, training: bool, splits=None, batch_size: int | None = None, **options):
        """Windows of `rows` (whole series in time order, with a split column) whose targets lie in `splits`."""
        from kiln.tasks.series.windows import Windows

        w = options.get("windows") or Windows(rows, spec)
        starts = w.starts(tuple(splits or ("train", "val", "test")))
        return w.dataset(starts, batch_size or self._batch(cfg, len(starts)), training, cfg.seed)

    def datasets(self, data: Prepared, cfg, run_dir: Path, batch_size: int):
        import math

        w, n = self.windows(data), data.extra["windows"]
        b = self._batch(cfg, n["train"])
        train = self.make_dataset(data.rows, data.spec, cfg, True, ("train",), b, windows=w)
        val = self.make_dataset(data.rows, data.spec, cfg, False, ("val",), b, windows=w) if n["val"] else None
        return train, val, int(math.ceil(n["train"] / b))

    def refit_dataset(self, data: Prepared, cfg, run_dir: Path, batch_size: int):
        import math

        w, n = self.windows(data), data.extra["windows"]
        b = self._batch(cfg, n["train"])
        return self.make_dataset(data.rows, data.spec, cfg, True, ("train", "val"), b, windows=w), int(math.ceil((n["train"] + n["val"]) / b))

    def resolve_auto(self, cfg, data, model_name: str):
        """epochs=auto: about 4,000 steps (20,000 with a `linear` model or member: see `LINEAR_STEPS`), in 20-200 epochs;
        patience=auto: 15 (40 with a linear model); refit=auto: off (val picks the epoch)."""
        from kiln.config.load import _flatten, load_config
        from kiln.train.auto import Decision

        t, n = cfg.train, data.extra["windows"]["train"]
        steps = max(1, -(-n // self._batch(cfg, n)))
        out = []
        if cfg.model.name == "auto":
            from kiln.tasks.series.models import auto_model

            out.append(Decision("model.name", *auto_model(n, tuple(cfg.series.members))))
        name = cfg.model.name if cfg.model.name != "auto" else "ensemble"
        linear = name == "linear" or (name == "ensemble" and "linear" in cfg.series.members)
        if t.epochs == "auto":
            target = LINEAR_STEPS if linear else 4000
            why = f"about {target:,} steps of {steps} a epoch" + (" (a linear model converges slowly)" if linear else "")
            out.append(Decision("train.epochs", int(np.clip(target // steps, 20, 200)), why))
        if t.patience == "auto":
            out.append(Decision("train.patience", LINEAR_PATIENCE, "forty epochs without a better val loss: a linear model's val loss "
                                "still creeps down after flat stretches") if linear else
                       Decision("train.patience", 15, "fifteen epochs without a better val loss"))
        if t.refit == "auto":
            out.append(Decision("train.refit", False, "the model val chose is kept; the test stretch stays unseen"))
        if cfg.series.lookback == "auto":
            out.append(Decision("series.lookback", data.spec.lookback, data.spec.lookback_reason))
        if cfg.series.season == "auto":
            out.append(Decision("series.season", data.spec.season, getattr(data.spec, "season_reason", "") or f"frequency {data.spec.freq}"))
        flat = _flatten(cfg.model_dump(mode="json"))
        flat.update({d.key: d.value for d in out if d.key != "model.name"})
        return load_config(overrides=flat), out

    # --- model -------------------------------------------------------------------------------------
    def build_model(self, name: str, data: Prepared, cfg):
        s = cfg.series
        dropout = 0.0 if cfg.model.dropout == "auto" else cfg.model.dropout  # a forecaster's default: none
        model = self.models.create(name, data.spec, width=s.width, blocks=s.blocks, dropout=dropout, residual=s.residual, members=tuple(s.members))
        if s.least_squares and "windows" in data.extra:
            from kiln.tasks.series.least_squares import warm_start

            for done in warm_start(model, self.windows(data), self.windows(data).starts(("train",)), data.spec):
                log.info("series: %s starts from least squares on %s training windows", done["model"], f"{done['windows']:,}")
        return model

    def custom_model(self, body):
        """`model=FILE.py:build` (kiln/user_model.py): a raw window (N, lookback, channels) -> scaled and centred as every
        series model's -> your body -> (N, horizon x quantiles) -> the forecast in the series' units (with series.residual,
        a correction to the seasonal-naive forecast)."""
        def build(spec, residual: bool = True, **_):
            from kiln.tasks.series.models import _frame
            from kiln.user_model import BuildSpec

            q = max(len(spec.quantiles), 1)
            net = body(BuildSpec("series", (spec.lookback, spec.channels), "float32", spec.horizon * q, "value", "linear",
                                 extra={"horizon": spec.horizon, "quantiles": list(spec.quantiles), "lookback": spec.lookback,
                                        "channels": spec.channels}))
            return _frame(spec, "custom", net, head=False, residual=residual)

        return build

    def compile_spec(self, data: Prepared, cfg) -> CompileSpec:
        from kiln.tasks.series.layers import MedianMAE, Pinball, ScaledMAE

        spec = data.spec
        if spec.quantiles:
            return CompileSpec(Pinball(spec.quantiles, spec.std[0]), metrics=[MedianMAE(spec.quantiles.index(0.5))], monitor="val_loss")
        return CompileSpec(ScaledMAE(spec.std[0]), metrics=[MedianMAE()], monitor="val_loss")

    def describe(self, model_name, model, data) -> str:
        n, s = data.extra["windows"], data.spec
        return (f"kiln: training {model_name} ({model.count_params():,} parameters) on {n['train']:,} windows of {s.lookback} steps -> "
                f"{s.horizon} ({s.freq}, season {s.season}), {n['val']:,} val / {n['test']:,} test windows")

    def after_fit(self, run, data: Prepared, cfg) -> dict:
        """model=auto on a short series: the trained model against an AR and seasonal naive computed inside a Keras
        model (and their means with it), on val's rolling origins; the trained model averaged with the AR ships unless another
        candidate is clearly better on val (choice.py)."""
        if cfg.model.name == "auto" and data.extra["windows"].get("val"):
            from kiln.tasks.series.choice import choose

            return choose(run, data.rows, run.spec, data.extra["windows"]["train"])
        return {}

    # --- run folder --------------------------------------------------------------------------------
    def run_meta(self, data: Prepared) -> dict:
        return {"task": "series", "series": data.spec.to_dict(), "classes": None, "windows": data.extra["windows"],
                "source": data.facts.get("source")}

    def load_spec(self, meta: Mapping):
        from kiln.tasks.series.windows import SeriesSpec  # (kiln.io.load_keras registers the layers model.keras refers to)

        return SeriesSpec.from_dict(meta["series"])

    def describe_run(self, meta: Mapping) -> dict:
        s = meta.get("series") or {}
        return {"classes": None, "input": f"{s.get('lookback')}x{1 + len(s.get('covariates') or [])} -> {s.get('horizon')} ({s.get('freq')})"}

    # --- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, run, data: Prepared, cfg) -> dict:
        from kiln.tasks.series.report import evaluate_fresh

        return evaluate_fresh(run, data.rows, run.spec, cfg.series)

    def evaluate_run(self, run, data: str | None = None, split: str = "test", out: str | None = None, **options) -> dict:
        from kiln.tasks.series.report import evaluate_file

        return evaluate_file(run, data, split, out)

    def predict(self, run, inputs, out: str | None = None, runtime: str = "auto", **options) -> list[dict]:
        from kiln.tasks.series.report import predict_files

        return predict_files(run, inputs, out, runtime)

    def predict_outputs(self, run, inputs, **options):
        """The model's output for windows (N, lookback, channels) of raw values."""
        from kiln.tasks.series.evaluate import predict_windows

        return predict_windows(run.model, np.asarray(inputs, np.float32))

    def report_sections(self, run, split, **options):
        from kiln.tasks.series.report import sections

        return sections(run)

    def audit(self, data: str, out: str | None = None, progress: bool = True, time=None, target=None, series=None,
              time_format=None, **options) -> dict:
        from kiln.tasks.series.report import audit_file

        return audit_file(data, out, time, target, series, time_format)

    # --- export and serve ----------------------------------------------------------------------------
    def signature(self, run):
        from kiln.tasks.series.serve import signature

        return signature(run)

    def parity_data(self, run, limit: int):
        from kiln.tasks.series.report import split_windows

        for split in ("test", "val", "train"):
            x, y = split_windows(run, split, limit)
            if len(x):
                return split, x, y
        raise DataError(received("export", "run", run.path, "the run's data has no window to compare on", "Keep the training file where it was"))

    def calibration_data(self, run, n: int):
        from kiln.tasks.series.report import split_windows

        return split_windows(run, "train", n)[0]

    def parity(self, reference, candidate, y) -> dict:
        from kiln.export.parity import value_parity

        # the MAE of the point forecast; a quantile output (N, H, Q) is scored by its middle quantile
        return value_parity(reference, candidate, y, point=lambda p: p[..., p.shape[-1] // 2] if p.ndim == 3 else p)

    def adapter(self, served):
        from kiln.tasks.series.serve import SeriesAdapter

        return SeriesAdapter(served)

    def demo_plan(self, dest: Path):
        from kiln.tasks.series.demo import demo_plan

        return demo_plan(dest)

    def example(self, root: Path, seed: int = 0) -> Example:
        from kiln.tasks.series.synth import write_example

        path, history, request = write_example(Path(root), seed)
        return Example(overrides={"data": str(path), "series.time": "date", "series.target": "load", "series.horizon": 6,
                                  "series.lookback": 24, "train.epochs": 3, "model": "dense", "series.width": 32},
                       request_path="/v1/models/{name}:predict", request=request, predict_inputs=[str(history)])


__all__ = ["SeriesTask"]
