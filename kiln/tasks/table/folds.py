"""The models of `cv=K`: one quiet fit per fold, on the spine's optimizer and the task's compile spec.

The run's own model trains through kiln/train/trainer.py; these fold models exist only to be scored
(no run folder, no checkpoints), so they fit with plain early stopping on the fold's own val rows.
"""

from __future__ import annotations

from kiln.tasks.table.auto import batch_rows  # the one rule (re-exported for cv and tests)


def fit_model(task, data, cfg, model_name: str, run_dir, verbose: int = 0):
    """Build, compile and fit one model on data's train split (its val split for early stopping); (model, batch)."""
    import keras

    from kiln.train.optim import build_optimizer

    keras.utils.set_random_seed(cfg.seed)
    model = task.build_model(model_name, data, cfg)
    cs = task.compile_spec(data, cfg)
    bs = task.batch_size(cfg, data)
    train_ds, val_ds, steps = task.datasets(data, cfg, run_dir, bs)
    monitor = cs.monitor if val_ds is not None else cs.monitor.removeprefix("val_")
    model.compile(optimizer=build_optimizer(cfg.train, steps, cfg.train.epochs), loss=cs.loss, metrics=cs.metrics,
                  jit_compile=cfg.train.jit_compile)
    callbacks = [keras.callbacks.EarlyStopping(monitor=monitor, mode=cs.mode, patience=cfg.train.patience,
                                               restore_best_weights=True)] if cfg.train.patience else []
    model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs, callbacks=callbacks, class_weight=cs.class_weight,
              shuffle=False, verbose=verbose)
    return model, bs


__all__ = ["batch_rows", "fit_model"]
