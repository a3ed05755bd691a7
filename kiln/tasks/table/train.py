"""The table training flow, in the contract's order (read_source -> analyse -> make_dataset ->
build_model -> compile_spec -> fit -> evaluate), on the spine's optimizer and callbacks.

It stands in for the spine trainer until that one is task-blind; then this module goes away and
`kiln train` calls the same Task methods from kiln/train/trainer.py.
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from kiln.config import dump_config
from kiln.io import save_model, write_json, write_text

log = logging.getLogger("kiln.table")


def batch_rows(cfg, n_train: int) -> int:
    b = cfg.table.batch_rows
    return int(np.clip(n_train // 100, 32, 1024)) if b == "auto" else int(b)


def fit_model(task, data, cfg, model_name: str, run_dir, verbose: int = 0, callbacks_dir=None):
    """Build, compile and fit one model on data's train split (val for early stopping)."""
    import keras

    from kiln.train.callbacks import build_callbacks
    from kiln.train.optim import build_optimizer

    keras.utils.set_random_seed(cfg.seed)
    model = task.build_model(model_name, data, cfg)
    cs = task.compile_spec(data, cfg)
    n_train = int((data.rows["split"] == "train").sum())
    bs = batch_rows(cfg, n_train)
    train_ds, val_ds, steps = task.datasets(data, cfg, run_dir, bs)
    monitor = cfg.train.monitor if val_ds is not None else cfg.train.monitor.removeprefix("val_")
    tcfg = cfg.train.model_copy(update={"monitor": monitor, "tensorboard": cfg.train.tensorboard and callbacks_dir is not None})
    model.compile(optimizer=build_optimizer(tcfg, steps, cfg.train.epochs), loss=cs.loss, metrics=cs.metrics,
                  jit_compile=cfg.train.jit_compile)
    if callbacks_dir is not None:
        callbacks = build_callbacks(tcfg, callbacks_dir)
    else:
        callbacks = [keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.train.patience, restore_best_weights=True)] if cfg.train.patience else []
    model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs, callbacks=callbacks, class_weight=cs.class_weight, shuffle=False,
              verbose=verbose)
    return model, bs


def train_run(task, cfg):
    """`kiln train data=FILE target=COL`: one table run folder, end to end; returns its Run."""
    import keras
    import tensorflow as tf

    from kiln import __version__
    from kiln.run import Run, new_run_dir

    started = time.time()
    source = task.read_source(cfg)
    model_name = task.choose_model(cfg)
    data = task.analyse(source, cfg, model_name)
    if model_name == "auto" or cfg.model.name == "auto":
        from kiln.tasks.table.models import auto_model

        model_name = auto_model(data.counts()["train"])
    saved_cfg = cfg  # config.yaml keeps `auto`; the values it took are printed
    cfg, decisions = task.resolve_auto(cfg, data, model_name)
    for decision in decisions:
        print(f"kiln: {decision.line()}", flush=True)
    run_dir = new_run_dir(cfg.run_dir, cfg.runs_root, cfg.name)
    log.info("train: run folder %s", run_dir)
    write_text(run_dir / "config.yaml", dump_config(saved_cfg))
    task.write_data(data, run_dir)
    c = data.counts()
    spec = data.spec
    verbose = cfg.train.verbose if (cfg.train.verbose != 1 or sys.stdout.isatty()) else 2
    print(f"kiln: training {model_name} on {c['train']} rows x {len(spec.used)} columns ({len(spec.features) - len(spec.used)} left out), "
          f"{spec.task}{f' of {len(spec.classes)} classes' if spec.classes else ''}, {c['val']} val / {c['test']} test", flush=True)
    dropped = [f"{f.column} ({f.reason})" for f in spec.features if f.encoding == "dropped"]
    if dropped:
        print(f"kiln: left out of the model: {'; '.join(dropped)}", flush=True)
    model, bs = fit_model(task, data, cfg, model_name, run_dir, verbose=verbose, callbacks_dir=run_dir)
    write_json(run_dir / "run.json", {
        "kiln_version": __version__, "tensorflow_version": tf.__version__, "keras_version": keras.__version__,
        "model": model_name, **task.run_meta(data), "counts": c, "skipped": int(len(data.skipped)),
        "train_seconds": round(time.time() - started, 2), "batch_rows": bs, "params": int(model.count_params()),
    })
    save_model(model, run_dir / "model.keras")
    run = Run(run_dir)
    task.after_fit(run, data, cfg)
    metrics = task.evaluate(run, data, cfg)
    if cfg.table.cv >= 2:
        from kiln.tasks.table.evaluate import cross_validate

        metrics["cv"] = cross_validate(task, data, cfg, model_name, run_dir)
    write_json(run_dir / "metrics.json", metrics)
    meta = run.meta
    meta["train_seconds"] = round(time.time() - started, 2)
    write_json(run_dir / "run.json", meta)
    if cfg.evaluate.report:
        try:
            from kiln.tasks.table.report import write_table_report

            write_table_report(Run(run_dir))
        except Exception as err:  # the run is saved already; a report problem must not lose it
            log.warning("train: report.html was not written (%s: %s)", type(err).__name__, err)
    return Run(run_dir)


__all__ = ["batch_rows", "fit_model", "train_run"]
