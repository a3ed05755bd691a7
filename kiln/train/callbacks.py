"""Callbacks for a run folder; Keras's own except `LearningRateLogger`, which Keras lacks."""

from __future__ import annotations

from pathlib import Path

import keras

from kiln.config.schema import TrainConfig
from kiln.train.optim import current_lr


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current `lr` to each epoch's logs, so history.csv and plots show it."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = current_lr(self.model.optimizer)


def monitor_mode(monitor: str) -> str:
    return "min" if "loss" in monitor else "max"


def build_callbacks(cfg: TrainConfig, run_dir: Path, history_file: str = "history.csv") -> list:
    mode = monitor_mode(cfg.monitor)
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        LearningRateLogger(),
        keras.callbacks.ModelCheckpoint(str(run_dir / "checkpoints" / "best.keras"), monitor=cfg.monitor, mode=mode,
                                        save_best_only=True),
    ]
    if cfg.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=cfg.monitor, mode=mode, patience=cfg.patience,
                                                       restore_best_weights=True, verbose=1))
    if cfg.reduce_lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=cfg.monitor, mode=mode, patience=cfg.reduce_lr_patience,
                                                           factor=0.2, verbose=1))
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), profile_batch=0))
    callbacks.append(keras.callbacks.CSVLogger(str(run_dir / history_file)))
    return callbacks
