"""`kiln train`: config -> data -> model -> fit -> run folder with model, history, metrics and plots."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np

from kiln.config import Config, dump_config
from kiln.io import save_model, write_json, write_text

log = logging.getLogger("kiln.train")


def class_weights(y: np.ndarray, num_classes: int) -> dict[int, float]:
    """'balanced': n / (k * count_c), scikit-learn's definition."""
    from sklearn.utils.class_weight import compute_class_weight

    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=y)
    return {i: float(w) for i, w in enumerate(weights)}


def choose_model(cfg: Config) -> str:
    """`model=auto`: the weights source's own model (weights=RUN_DIR), else a small CNN from scratch."""
    from kiln.tasks.image.models.weights import auto_model, check_weights

    name = auto_model(cfg.model.weights) if cfg.model.name == "auto" else cfg.model.name
    check_weights(name, cfg.model.weights)  # a bad weights= fails here, before any data is read
    return name


def make_inputs(cfg: Config, data, spec, run_dir: Path, replicas: int = 1):
    """Train and val datasets batched by the global batch (`data.batch_size` per replica x replicas), and
    steps per epoch."""
    from kiln.tasks.image.data.pipeline import cache_fits_in_memory, make_dataset

    k = len(data.classes)
    cache = cfg.data.cache
    if cache == "auto":
        cache = "memory" if cache_fits_in_memory(len(data.table), spec.size, spec.channels) else "none"
    batch_size = cfg.data.batch_size * replicas
    from kiln.tasks.image.data.augment import build_augment

    augment = build_augment(cfg.augment, spec.size, spec.channels, cfg.seed)  # None when the section is all off

    def ds(rows, training):
        # a TFRecord shard folder reads its split's shards instead of the files (kiln/tasks/image/data/records.py)
        make = make_dataset if data.shards is None else data.shards.dataset_for(rows)
        return make(rows["path"].tolist(), rows["y"].to_numpy(), k, size=spec.size, channels=spec.channels,
                            resize=spec.resize, batch_size=batch_size, training=training, seed=cfg.seed,
                            cache=cache, cache_dir=str(run_dir / "cache" / ("train" if training else "eval")),
                            shuffle_buffer=cfg.data.shuffle_buffer, use_pil=rows["use_pil"].to_numpy(),
                            augment=augment if training else None)

    if cache == "disk":
        (run_dir / "cache").mkdir(exist_ok=True)
    train_rows, val_rows = data.split("train"), data.split("val")
    train_ds = ds(train_rows, True)
    val_ds = ds(val_rows, False) if len(val_rows) else None
    steps = int(np.ceil(len(train_rows) / batch_size))
    return train_ds, val_ds, steps


def _self_training_task(cfg: Config):
    """A registered task that still runs its own training flow (until this trainer is task-blind), else None."""
    from kiln.tasks.base import TaskError, resolve_task

    try:
        task = resolve_task(cfg)
    except TaskError:
        return None
    return task if getattr(task, "trains_itself", False) else None


def train(cfg: Config):
    """Run one training job end to end and return its `Run` (None on a multi-worker process that is not the chief).

    Resumes an unfinished run folder (see kiln/train/resume.py); trains in phases (kiln/train/phases.py)
    under the `train.distribute` strategy and `train.precision` policy (kiln/train/distribute.py).
    """
    from kiln.train.distribute import is_chief, make_strategy, precision_policy
    from kiln.train.resume import RunFolder

    own = _self_training_task(cfg)
    if own is not None:
        return own.train_run(cfg)
    chief = is_chief() if cfg.train.distribute in ("auto", "multi_worker") else True
    folder = RunFolder(cfg, chief=chief)  # refuses a finished run_dir before TensorFlow starts
    strategy = make_strategy(cfg.train.distribute)  # before other TF ops: multi-worker collectives need that
    try:
        with precision_policy(cfg.train.precision):
            return _train(cfg, strategy, folder)
    finally:
        folder.close()


def _train(cfg: Config, strategy, folder):
    import keras
    import tensorflow as tf

    from kiln import __version__
    from kiln.tasks.image.data import check
    from kiln.tasks.image.data.prepare import prepare, resolve_spec, write_splits
    from kiln.evaluate.metrics import classification_metrics
    from kiln.evaluate.plots import plot_confusion, plot_history
    from kiln.tasks.image.models import create_model, get_entry
    from kiln.run import Run
    from kiln.train.distribute import agree, shard_options
    from kiln.train.phases import fit_phases
    from kiln.train.resume import check_splits

    started = time.time()
    model_name = choose_model(cfg)
    entry = get_entry(model_name)  # fail on a bad model name before touching data
    data = prepare(cfg.data, cfg.seed, warn=False)  # warned once skipped.csv is written, naming it
    spec = resolve_spec(cfg.data, data.facts, entry.default_size, needs_rgb=entry.family != "simple")
    k = len(data.classes)
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():  # before the run folder exists: a failed ImageNet download must not leave one behind
        model = create_model(model_name, spec.shape, k, **cfg.model.model_dump(exclude={"name"}))
    run_dir = folder.create()
    if folder.resuming:
        check_splits(run_dir, data.table)
    log.info("train: run folder %s", run_dir)
    write_text(run_dir / "config.yaml", dump_config(cfg))
    write_splits(data, run_dir / "splits.csv")
    if len(data.skipped):
        write_text(run_dir / "skipped.csv", data.skipped[["path", "label", "error"]].to_csv(index=False))
        check.warn_skipped(data.skipped["error"], len(data.skipped) + len(data.table), str(run_dir / "skipped.csv"))

    train_rows, val_rows, test_rows = data.split("train"), data.split("val"), data.split("test")
    train_ds, val_ds, steps = make_inputs(cfg, data, spec, run_dir, strategy.num_replicas_in_sync)
    train_ds, val_ds = shard_options(train_ds, strategy), shard_options(val_ds, strategy)

    top_k = min(cfg.train.top_k, k)
    monitor = cfg.train.monitor if val_ds is not None else cfg.train.monitor.removeprefix("val_")
    weights = class_weights(train_rows["y"].to_numpy(), k) if cfg.train.class_weight == "balanced" else None
    verbose = cfg.train.verbose if (cfg.train.verbose != 1 or sys.stdout.isatty()) else 2
    print(f"kiln: training {model_name} ({model.count_params():,} parameters) on {len(train_rows)} images, "
          f"{k} classes, input {spec.height}x{spec.width}x{spec.channels}, {len(val_rows)} val / {len(test_rows)} test",
          flush=True)
    agree(strategy, folder.state.epoch if folder.state else 0, "resume epoch")
    model = fit_phases(model, cfg, run_dir=run_dir, state=folder.state, strategy=strategy, train_ds=train_ds, val_ds=val_ds,
                       steps=steps, monitor=monitor, top_k=top_k, class_weight=weights, verbose=verbose, chief=folder.chief,
                       model_name=model_name)
    if not folder.chief:
        print("kiln: worker finished; the chief writes the run folder", flush=True)
        return None
    train_seconds = time.time() - started

    write_json(run_dir / "run.json", {
        "kiln_version": __version__, "tensorflow_version": tf.__version__, "keras_version": keras.__version__,
        "model": model_name, "classes": data.classes, "image": spec.to_dict(),
        "counts": {s: int((data.table["split"] == s).sum()) for s in ("train", "val", "test")},
        "skipped": int(len(data.skipped)), "train_seconds": round(train_seconds, 2),
        "replicas": int(strategy.num_replicas_in_sync), "global_batch": cfg.data.batch_size * int(strategy.num_replicas_in_sync),
        "precision": cfg.train.precision,
        **({"shards": data.shards.describe()} if data.shards is not None else {}),
    })
    save_model(model, run_dir / "model.keras")
    folder.finish()

    run = Run(run_dir)
    metrics = {}
    threshold = None  # two-class runs: chosen on val (cfg.evaluate.threshold), stored in run.json, used on test
    for split_name, rows in (("val", val_rows), ("test", test_rows)):
        if len(rows):
            if data.shards is not None:
                probs = data.shards.predict_proba(run, split_name)[1]  # same order as rows (index.csv)
            else:
                probs = run.predict_proba(rows["path"].tolist(), use_pil=rows["use_pil"].to_numpy())
            if split_name == "val" and k == 2:
                from kiln.evaluate.threshold import store_threshold
                threshold = store_threshold(run, rows["y"].to_numpy(), probs, cfg.evaluate.threshold)
            metrics[split_name] = classification_metrics(rows["y"].to_numpy(), probs, data.classes, top_k, threshold=threshold)
    write_json(run_dir / "metrics.json", metrics)
    plots = run_dir / "plots"
    plot_history(run.history, plots)
    for split_name, m in metrics.items():
        plot_confusion(m["confusion_matrix"], data.classes, plots / f"confusion_{split_name}.png", f"{split_name} confusion matrix")
    if cfg.evaluate.report:
        try:
            from kiln.evaluate.report import write_report
            write_report(run)
        except Exception as err:  # the run is saved already; a report problem must not lose it
            log.warning("train: report.html was not written (%s: %s); retry with kiln report %s", type(err).__name__, err, run_dir)
    return run
