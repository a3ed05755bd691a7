"""`kiln train`: config -> data -> model -> fit -> run folder with model, history, metrics and plots."""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from kiln.config import Config, dump_config
from kiln.io import FORMAT_VERSION, save_model, write_json, write_text

log = logging.getLogger("kiln.train")


def class_weights(y: np.ndarray, num_classes: int) -> dict[int, float]:
    """'balanced': n / (k * count_c), scikit-learn's definition."""
    from sklearn.utils.class_weight import compute_class_weight

    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=y)
    return {i: float(w) for i, w in enumerate(weights)}


def train(cfg: Config):
    """Run one training job end to end and return its `Run` (None on a multi-worker process that is not the chief).

    Resumes an unfinished run folder (see kiln/train/resume.py); trains in phases (kiln/train/phases.py)
    under the `train.distribute` strategy and `train.precision` policy (kiln/train/distribute.py).
    """
    from kiln.tasks.base import resolve_task
    from kiln.train.distribute import is_chief, make_strategy, precision_policy
    from kiln.train.resume import RunFolder

    task = resolve_task(cfg)  # an unknown task= fails here, before TensorFlow starts
    chief = is_chief() if cfg.train.distribute in ("auto", "multi_worker") else True
    folder = RunFolder(cfg, chief=chief)  # refuses a finished run_dir before TensorFlow starts
    strategy = make_strategy(cfg.train.distribute)  # before other TF ops: multi-worker collectives need that
    try:
        with precision_policy(cfg.train.precision):
            return _train(cfg, task, strategy, folder)
    finally:
        folder.close()


def _train(cfg: Config, task, strategy, folder):
    import keras
    import tensorflow as tf

    from kiln import __version__
    from kiln.evaluate.plots import plot_history
    from kiln.run import Run
    from kiln.train.distribute import agree, shard_options
    from kiln.train import auto
    from kiln.train.phases import best_epoch_count, fit_phases
    from kiln.train.resume import check_splits

    from kiln import user_model

    started = time.time()
    user_model.register(task, cfg.model.name)  # model=FILE.py:build: your own body inside the task's preparation
    model_name = task.choose_model(cfg)  # fail on a bad model name before touching data
    data = task.analyse(task.read_source(cfg), cfg, model_name)
    model_name = data.model or model_name  # model=auto decided from the data (e.g. by its size)
    saved_cfg = cfg  # config.yaml keeps `auto`; the values it took are in run.json
    cfg, decisions = task.resolve_auto(cfg, data, model_name)
    for decision in decisions:
        print(f"kiln: {decision.line()}", flush=True)
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():  # before the run folder exists: a failed ImageNet download must not leave one behind
        model = task.build_model(model_name, data, cfg)
    run_dir = folder.create()
    if folder.resuming:
        check_splits(run_dir, task.splits_frame(data))
    log.info("train: run folder %s", run_dir)
    write_text(run_dir / "config.yaml", dump_config(saved_cfg))
    task.write_data(data, run_dir)

    replicas = int(strategy.num_replicas_in_sync)
    global_batch = task.batch_size(cfg, data) * replicas
    train_ds, val_ds, steps = task.datasets(data, cfg, run_dir, global_batch)
    train_ds, val_ds = shard_options(train_ds, strategy), shard_options(val_ds, strategy)
    refit_ds = refit_steps = None
    if cfg.train.refit is True and val_ds is not None:
        refit_ds, refit_steps = task.refit_dataset(data, cfg, run_dir, global_batch)
        refit_ds = shard_options(refit_ds, strategy)
    selection_outputs = run_dir / "state" / "selection_val_outputs.npy"

    def keep_val_outputs(selection_model):
        """Val's outputs from the model val chose: the honest val metrics once the refit has seen val."""
        if folder.chief:
            from kiln.io import atomic_path

            outputs = np.asarray(selection_model.predict(val_ds.map(lambda x, y: x), verbose=0))
            selection_outputs.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(selection_outputs) as tmp:
                np.save(tmp, outputs)

    compiled = task.compile_spec(data, cfg)
    monitor = compiled.monitor if val_ds is not None else compiled.monitor.removeprefix("val_")
    verbose = cfg.train.verbose if (cfg.train.verbose != 1 or sys.stdout.isatty()) else 2
    print(task.describe(model_name, model, data), flush=True)
    agree(strategy, folder.state.epoch if folder.state else 0, "resume epoch")
    model = fit_phases(model, cfg, run_dir=run_dir, state=folder.state, strategy=strategy, train_ds=train_ds, val_ds=val_ds,
                       steps=steps, monitor=monitor, compiled=compiled, verbose=verbose, chief=folder.chief,
                       model_name=model_name, task=task, refit_ds=refit_ds, refit_steps=refit_steps,
                       before_refit=keep_val_outputs)
    if refit_ds is not None and selection_outputs.is_file():
        data.outputs["val"] = np.load(selection_outputs)  # the refit model trained on val; the model val chose did not
    if not folder.chief:
        print("kiln: worker finished; the chief writes the run folder", flush=True)
        return None
    train_seconds = time.time() - started

    meta = {
        "format_version": FORMAT_VERSION, "kiln_version": __version__, "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__, "task": task.info.name, "model": model_name, **user_model.meta(model_name),
        **task.run_meta(data),
        "counts": data.counts(), "train_seconds": round(train_seconds, 2), "replicas": replicas,
        "global_batch": global_batch,
        "precision": cfg.train.precision, "auto": auto.record(decisions),
        **({"refit": {"epochs": int(best_epoch_count(run_dir, monitor, 1, 0, compiled.mode)),
                      "examples": int(sum(data.counts()[s] for s in ("train", "val"))),
                      "val_metrics": "from the model val chose, before the refit" if "val" in data.outputs
                      else "from the refit model, which trained on val"}}
           if refit_ds is not None else {}),
    }
    meta.update(task.after_fit(Run(run_dir, meta=meta, model=model), data, cfg) or {})  # values learned after fitting
    write_json(run_dir / "run.json", meta)
    save_model(model, run_dir / "model.keras")
    folder.finish()

    run = Run(run_dir)
    metrics = task.evaluate(run, data, cfg)
    write_json(run_dir / "metrics.json", metrics)
    from kiln.evaluate.headline import history_metrics

    plot_history(run.history, run_dir / "plots", history_metrics(meta))
    if cfg.evaluate.report:
        try:
            from kiln.evaluate.report import write_report
            write_report(run)
        except Exception as err:  # the run is saved already; a report problem must not lose it
            log.warning("train: report.html was not written (%s: %s); retry with kiln report %s", type(err).__name__, err, run_dir)
    return run
