"""Image classification behind the task contract: the glue between the spine and kiln/tasks/image/*.

Every method hands over to the module that did the same work before tasks existed (data/prepare,
data/pipeline, models/registry, evaluate, predict, report, export, serve), so behaviour is unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from kiln.errors import ConfigError, received
from kiln.tasks.base import ACCURACY, MACRO_F1, MAE, R2, RMSE, CompileSpec, Example, Prepared, Source, Task, TaskInfo, register_task
from kiln.tasks.image.config import LEGACY, MODEL_KEYS, ImageConfig, ImageServeOptions, image_data, model_kwargs
from kiln.tasks.image.models.registry import MODELS

log = logging.getLogger("kiln.train")

EXPORT_FORMATS = ("keras", "savedmodel", "tflite", "onnx")


@register_task
class ImageTask(Task):
    info = TaskInfo(
        name="image",
        description="image classification or regression: labelled images -> class probabilities, or a value per image",
        sources=("folder per class", "pre-split folder {train,val,test}/<class>", "CSV path,label[,split]",
                 "CSV path,<numbers>[,split] with target=<numbers> (regression)", "TFRecord shard folder (kiln convert)"),
        label_kinds=("classification", "regression"),
        default_model="cnn",
        monitor="val_loss",
        mode="min",
        export_formats=EXPORT_FORMATS,
        resume_keys=("image.image_size", "image.channels", "image.resize", "image.alpha_background", "image.target", "image.loss",
                     *(f"image.{k}" for k in sorted(MODEL_KEYS))),
        runtimes=("keras", "onnx"),  # kiln/export/runtime.py
        returns=("probabilities", "value"), headline={"probabilities": (ACCURACY, MACRO_F1), "value": (R2, RMSE, MAE)},
    )
    models = MODELS
    config_section = ImageConfig
    serve_options = ImageServeOptions
    config_legacy = LEGACY

    # --- which data is this task's --------------------------------------------------------------
    def claims(self, path: str | None, keys: Mapping[str, Any]) -> int:
        """80 for image folders, CSVs with a path column and shard folders; 1 for anything else, because
        image was Kiln's only task and its own errors say best what is wrong with such a path."""
        from kiln.tasks.image.data.sources import IMAGE_SUFFIXES

        if not path:
            return 1
        p = Path(path).expanduser()
        if p.is_file() and p.suffix.lower() in (".csv", ".tsv", ".txt"):
            try:
                with open(p, encoding="utf-8-sig", errors="replace") as f:
                    header = [c.strip().lower() for c in f.readline().replace("\t", ",").split(",")]
                    first = f.readline().replace("\t", ",").split(",")
            except OSError:
                return 1
            if "path" not in header:
                return 1
            path_value = first[header.index("path")].strip().strip('"') if len(first) == len(header) else ""
            # a path column of image files: this task's, with or without target= (ahead of the table task's CSV + target)
            return 92 if Path(path_value).suffix.lower() in IMAGE_SUFFIXES else 80
        if p.is_dir():
            if (p / "manifest.json").is_file() and any(p.glob("*.tfrecord*")):
                return 90
            for depth, pattern in enumerate(("*/*", "*/*/*")):
                for i, f in enumerate(p.glob(pattern)):
                    if f.suffix.lower() in IMAGE_SUFFIXES:
                        return 80
                    if i > 200 + depth * 800:
                        break
        return 1

    # --- data -------------------------------------------------------------------------------------
    def read_source(self, cfg) -> Source:
        """Discover, decode-check and split (kiln/tasks/image/data/prepare.py); skipped files are warned
        about once write_data has written skipped.csv."""
        from kiln.tasks.image.data.prepare import prepare

        p = prepare(image_data(cfg), cfg.seed, warn=False)
        return Source(p.table, p.skipped, p.facts, extra={"classes": p.classes, "shards": p.shards})

    def analyse(self, source: Source, cfg, model_name: str) -> Prepared:
        from kiln.tasks.image.data.prepare import resolve_spec

        entry = self.models.get(model_name)
        spec = resolve_spec(image_data(cfg), source.facts, entry.default_size, needs_rgb=entry.family not in ("simple", "custom"),
                            n_train=int((source.rows["split"] == "train").sum()))
        classes = source.extra["classes"]
        extra = {"shards": source.extra.get("shards")}
        if classes is None:  # a numeric target (kiln/tasks/image/regress.py)
            from kiln.tasks.image.regress import target_meta

            extra["target"] = target_meta(source.rows, cfg.image.target.strip().lower() if cfg.image.target else "label")
        return Prepared(source.rows, spec, source.skipped, None if classes is None else list(classes), source.facts, extra=extra)

    def write_data(self, data: Prepared, run_dir: Path) -> None:
        from kiln.io import write_text
        from kiln.tasks.image.data import check
        from kiln.tasks.image.data.prepare import write_splits

        write_splits(_legacy(data), run_dir / "splits.csv")
        if len(data.skipped):
            write_text(run_dir / "skipped.csv", data.skipped[["path", "label", "error"]].to_csv(index=False))
            check.warn_skipped(data.skipped["error"], len(data.skipped) + len(data.rows), str(run_dir / "skipped.csv"))

    def splits_frame(self, data: Prepared):
        return data.rows[["path", "label", "split"]]

    def make_dataset(self, rows, spec, cfg, training: bool, **options):
        """`pipeline.make_dataset` (or the shards' reader) for `rows`; options: batch_size, cache, cache_dir,
        augment, shards, num_classes."""
        from kiln.tasks.image.data.pipeline import make_dataset

        shards = options.get("shards")
        make = make_dataset if shards is None else shards.dataset_for(rows)  # shards read their split's records
        return make(rows["path"].tolist(), rows["y"].to_numpy(), options["num_classes"], size=spec.size, channels=spec.channels,
                    resize=spec.resize, batch_size=options["batch_size"], training=training, seed=cfg.seed,
                    cache=options.get("cache", "none"), cache_dir=options.get("cache_dir"),
                    shuffle_buffer=cfg.data.shuffle_buffer, use_pil=rows["use_pil"].to_numpy(),
                    augment=options.get("augment") if training else None, background=spec.alpha_background)

    def _options(self, data: Prepared, cfg, run_dir: Path, batch_size: int) -> dict:
        """make_dataset options shared by every split: the cache decided over every image, the augment layer."""
        from kiln.tasks.image.data.augment import build_augment
        from kiln.tasks.image.data.pipeline import cache_fits_in_memory

        spec = data.spec
        cache = cfg.data.cache
        if cache == "auto":
            cache = "memory" if cache_fits_in_memory(len(data.rows), spec.size, spec.channels) else "none"
        if cache == "disk":
            (run_dir / "cache").mkdir(exist_ok=True)
        augment = build_augment(cfg.image.augment, spec.size, spec.channels, cfg.seed)  # None when the section is all off
        return dict(num_classes=len(data.classes or []), batch_size=batch_size, cache=cache, augment=augment,
                    shards=data.extra.get("shards"))

    def refit_dataset(self, data: Prepared, cfg, run_dir: Path, batch_size: int):
        import numpy as np

        rows = data.rows[data.rows["split"].isin(["train", "val"])]
        ds = self.make_dataset(rows, data.spec, cfg, True, cache_dir=str(run_dir / "cache" / "refit"),
                               **self._options(data, cfg, run_dir, batch_size))
        return ds, int(np.ceil(len(rows) / batch_size))

    def resolve_auto(self, cfg, data: Prepared, model_name: str):
        """Image size, width, epochs, patience, mild augmentation and the refit from the data (kiln/tasks/image/auto.py)."""
        from kiln.tasks.image.auto import resolve
        from kiln.tasks.image.models.weights import has_pretrained_weights

        entry = self.models.get(model_name)
        return resolve(cfg, spec=data.spec, n_train=len(data.split("train")), n_val=len(data.split("val")),
                       model_name=model_name, family=entry.family, facts=data.facts, own_size=entry.default_size,
                       pretrained=has_pretrained_weights(cfg, model_name, self.models), rows=data.split("train"),
                       regression=data.classes is None)

    def datasets(self, data: Prepared, cfg, run_dir: Path, batch_size: int):
        """Train and val datasets at the global batch, with the cache decided over every image and the
        `augment` section on the training split only."""
        import numpy as np

        spec = data.spec
        common = self._options(data, cfg, run_dir, batch_size)
        train_rows, val_rows = data.split("train"), data.split("val")
        train_ds = self.make_dataset(train_rows, spec, cfg, True, cache_dir=str(run_dir / "cache" / "train"), **common)
        val_ds = self.make_dataset(val_rows, spec, cfg, False, cache_dir=str(run_dir / "cache" / "eval"), **common) \
            if len(val_rows) else None
        return train_ds, val_ds, int(np.ceil(len(train_rows) / batch_size))

    # --- model --------------------------------------------------------------------------------------
    def choose_model(self, cfg) -> str:
        """`model=auto`: the weights source's own model (weights=RUN_DIR), else a small CNN from scratch."""
        from kiln.tasks.image.models.weights import auto_model, check_weights

        name = auto_model(cfg.image.weights) if cfg.model.name == "auto" else cfg.model.name
        self.models.get(name)  # a bad model name fails before any data is read
        check_weights(name, cfg.image.weights)  # so does a bad weights=
        return name

    def pretrained(self, cfg, model_name: str) -> bool:
        from kiln.tasks.image.models.weights import has_pretrained_weights

        return has_pretrained_weights(cfg, model_name, self.models)

    def build_model(self, name: str, data: Prepared, cfg):
        from kiln.tasks.image.models import create_model

        if data.classes is None:  # a numeric target: the same body, one linear unit in the target's units
            from kiln.tasks.image.regress import value_head

            t = data.extra["target"]
            return value_head(create_model(name, data.spec.shape, 1, **model_kwargs(cfg)), t["mean"], t["std"])
        return create_model(name, data.spec.shape, len(data.classes), **model_kwargs(cfg))

    def custom_model(self, body):
        """`model=FILE.py:build`: pixels -> Rescaling(1/255) -> your body (kiln/tasks/image/models/custom.py)."""
        from kiln.tasks.image.models.custom import custom_builder

        return custom_builder(body)

    def compile_spec(self, data: Prepared, cfg) -> CompileSpec:
        import keras

        loss = cfg.image.loss
        if data.classes is None:
            if loss == "crossentropy":
                raise ConfigError(received("train", "image.loss", loss, "a numeric target trains with mse, mae or huber", "Use loss=mse"))
            lossfn = {"auto": "mse", "mse": "mse", "mae": "mae", "huber": keras.losses.Huber(delta=data.extra["target"]["std"])}[loss]
            return CompileSpec(lossfn, [keras.metrics.RootMeanSquaredError(name="rmse"), keras.metrics.MeanAbsoluteError(name="mae")],
                               cfg.train.monitor, "min" if any(k in cfg.train.monitor for k in ("loss", "rmse", "mae")) else "max")
        if loss not in ("auto", "crossentropy"):
            raise ConfigError(received("train", "image.loss", loss, "classes train with cross-entropy",
                                       "Use loss=auto, or name a column of numbers with target= to regress"))
        k = len(data.classes)
        from kiln.evaluate.metrics import useful_top_k

        top_k = useful_top_k(cfg.train.top_k, k)  # top-k of k classes is always 1.0: not shown
        weights = None
        if cfg.train.class_weight == "balanced":
            from kiln.train.trainer import class_weights

            weights = class_weights(data.split("train")["y"].to_numpy(), k)
        return CompileSpec(
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.train.label_smoothing),
            metrics=["accuracy"] + ([keras.metrics.TopKCategoricalAccuracy(k=top_k, name="top_k_accuracy")] if top_k else []),
            monitor=cfg.train.monitor, mode="min" if "loss" in cfg.train.monitor else "max", class_weight=weights)

    def describe(self, model_name: str, model, data: Prepared) -> str:
        c, spec = data.counts(), data.spec
        what = f"{len(data.classes)} classes" if data.classes else f"regression of {data.extra['target']['name']}"
        return (f"kiln: training {model_name} ({model.count_params():,} parameters) on {c['train']} images, "
                f"{what}, input {spec.height}x{spec.width}x{spec.channels}, {c['val']} val / {c['test']} test")

    def after_fit(self, run, data: Prepared, cfg) -> dict:
        """Two-class runs: the decision threshold chosen on val (cfg.evaluate.threshold), for run.json."""
        rows = data.split("val")
        if len(data.classes or []) != 2 or not len(rows):
            return {}
        from kiln.evaluate.threshold import learned_threshold

        probs = self._split_probs(run, data, "val")
        data.outputs["val"] = probs
        learned = learned_threshold(data.classes, rows["y"].to_numpy(), probs, cfg.evaluate.threshold,
                                    y_train=data.split("train")["y"].to_numpy())
        data.extra["threshold"] = learned["threshold"]
        return learned

    def _split_probs(self, run, data: Prepared, split: str):
        cached = data.outputs.get(split)
        if cached is not None:
            return cached
        if data.extra.get("shards") is not None:
            return data.extra["shards"].predict_proba(run, split)[1]  # same order as rows (index.csv)
        rows = data.split(split)
        return run.predict_proba(rows["path"].tolist(), use_pil=rows["use_pil"].to_numpy())

    # --- run folder ----------------------------------------------------------------------------------
    def run_meta(self, data: Prepared) -> dict:
        shards = data.extra.get("shards")
        return {"classes": data.classes, "image": data.spec.to_dict(), "skipped": int(len(data.skipped)),
                **({"target": data.extra["target"]} if data.classes is None else {}),
                **({"shards": shards.describe()} if shards is not None else {})}

    def load_spec(self, meta: Mapping):
        from kiln.tasks.image.data.prepare import ImageSpec

        return ImageSpec.from_dict(meta["image"])

    def returns(self, meta: Mapping) -> str:
        """"value" for a run trained on a numeric target (run.json has "target" and no classes)."""
        return "value" if meta.get("target") and not meta.get("classes") else "probabilities"

    def describe_run(self, meta: Mapping) -> dict:
        """`kiln runs` columns: classes and input size."""
        image = meta.get("image", {})
        return {"classes": len(meta.get("classes", [])) or None,
                "input": f"{image['height']}x{image['width']}x{image['channels']}" if image else None}

    # --- evaluation and report -------------------------------------------------------------------------
    def evaluate(self, run, data: Prepared, cfg) -> dict:
        """Val and test metrics (the two-class threshold from after_fit applied) and confusion plots."""
        from kiln.evaluate.metrics import classification_metrics
        from kiln.evaluate.plots import plot_confusion

        if data.classes is None:  # metrics, baselines and plots of a numeric target
            from kiln.tasks.image.regress_report import evaluate

            return evaluate(self, run, data, cfg)
        top_k = min(cfg.train.top_k, len(data.classes))
        metrics = {}
        for split in ("val", "test"):
            rows = data.split(split)
            if len(rows):
                probs = self._split_probs(run, data, split)
                metrics[split] = classification_metrics(rows["y"].to_numpy(), probs, data.classes, top_k,
                                                        threshold=data.extra.get("threshold"))
        for split, m in metrics.items():
            plot_confusion(m["confusion_matrix"], data.classes, run.path / "plots" / f"confusion_{split}.png",
                           f"{split} confusion matrix")
        return metrics

    def evaluate_run(self, run, data=None, split="test", out=None, **options) -> dict:
        from kiln.tasks.image.evaluate import evaluate_run

        return evaluate_run(run, data=data, split=split, out=out, **options)

    def predict(self, run, inputs, out=None, **options) -> list[dict]:
        from kiln.tasks.image.predict import predict_paths

        return predict_paths(run, inputs, out=out, **options)

    def predict_outputs(self, run, inputs, batch_size: int = 64, use_pil=None, model=None):
        """(N, K) class probabilities for image files, in order (`model`: an export standing in for run.model,
        fed pixels decoded here, without TensorFlow)."""
        import numpy as np

        from kiln.tasks.image.predict import dataset

        if len(inputs) == 0:
            return np.zeros((0, len(run.classes or [None])), np.float32)
        if model is not None:
            from kiln.tasks.image.predict import decode_files

            return np.concatenate([model(decode_files(run, inputs[i:i + batch_size], use_pil[i:i + batch_size] if use_pil is not None else None))
                                   for i in range(0, len(inputs), batch_size)])
        ds = dataset(run, list(inputs), batch_size=batch_size, use_pil=use_pil).map(lambda x, y: x)
        return np.asarray(run.model.predict(ds, verbose=0))

    def report_sections(self, run, split, **options):
        if not run.classes:
            from kiln.tasks.image.regress_report import sections as value_sections

            return value_sections(run, split)
        from kiln.tasks.image.report import sections

        return sections(run, split, **options)

    def audit(self, data, out=None, progress=True, **options) -> dict:
        from kiln.tasks.image.data.audit import audit

        options = {k: v for k, v in options.items() if k not in ("target", "task") or v not in (None, "auto")}
        return audit(data, out=out, options=options, progress=progress)

    def command(self, name: str):
        """audit (limits, fix=quarantine), audit restore, convert (TFRecord shards), convert verify, label-issues."""
        from kiln.tasks.image.commands import COMMANDS

        if name not in COMMANDS:
            raise self.unsupported(name)
        return COMMANDS[name]

    def quarantine(self, report: dict):
        from kiln.tasks.image.data.quarantine import quarantine

        return quarantine(report) if report.get("quarantine") else None

    def convert(self, data, out, cfg, progress=True, **options) -> dict:
        """TFRecord shards with a manifest (kiln/tasks/image/data/records.py): shard_mb, shard_images, workers."""
        from kiln.tasks.image.data.records import convert

        return convert(data, out, cfg, progress=progress, **options)

    def augment_preview(self, cfg, out=None, samples=8, variants=5):
        from kiln.tasks.image.data.augment import augment_preview

        return augment_preview(cfg, out=out, samples=samples, variants=variants)

    def label_issues(self, run, **options):
        """cleanlab on out-of-sample probabilities (kiln/tasks/image/label_issues.py): method, folds, epochs, batch_size."""
        from kiln.tasks.image.label_issues import find_label_issues

        return find_label_issues(run, **options)

    def inspect_model(self, name, input_shape=None, classes=None):
        """Built for `input_shape` (H,W,C or one side; default the family's own size) and `classes` (10), no weights."""
        from kiln.inspect import parse_input_shape
        from kiln.tasks.image.models import create_model, get_entry

        entry = get_entry(name)
        shape = parse_input_shape(input_shape) or (entry.default_size or 224,) * 2 + (3,)
        return create_model(name, shape, 10 if classes is None else classes, weights="none")

    # --- export and serve ---------------------------------------------------------------------------------
    def signature(self, run):
        from kiln.tasks.image.export import signature

        return signature(run)

    def parity_data(self, run, limit: int):
        from kiln.tasks.image.export import parity_images

        return parity_images(run, limit)

    def calibration_data(self, run, n: int):
        from kiln.tasks.image.export import calibration_images

        return calibration_images(run, n)

    def parity(self, reference, candidate, y) -> dict:
        import numpy as np

        from kiln.export.parity import class_parity, value_parity

        if np.asarray(reference).shape[-1] == 1:  # a numeric target: within 1e-3 of the target's spread
            return value_parity(reference, candidate, y)
        return class_parity(reference, candidate, y)

    def adapter(self, served):
        from kiln.tasks.image.serve.adapter import ImageAdapter

        return ImageAdapter(served)

    def demo_plan(self, dest: Path):
        from kiln.tasks.image.demo import demo_plan

        return demo_plan(dest)

    # --- the contract test ----------------------------------------------------------------------------------
    def example(self, root: Path, seed: int = 0) -> Example:
        """3 classes x 20 generated 16x16 PNGs (a coloured bar, a bar across, a square) and a linear model."""
        import base64

        from kiln.tasks.image.demo import write_shapes

        data = write_shapes(Path(root) / "shapes", classes=3, per_class=20, size=16, seed=seed)
        one = sorted((data / "class_a").iterdir())[0]
        request = {"instances": [{"b64": base64.b64encode(one.read_bytes()).decode()}]}
        return Example(overrides={"data": str(data), "image_size": 16, "model": "linear", "epochs": 2},
                       request_path="/v1/models/{name}:predict", request=request, predict_inputs=[str(one)])


def _legacy(data: Prepared):
    """The image pipeline's own Prepared (kiln/tasks/image/data/prepare.py) for functions that take it."""
    from kiln.tasks.image.data.prepare import Prepared as ImagePrepared

    return ImagePrepared(data.rows, data.classes, data.facts, data.skipped, data.extra.get("shards"))
