"""Optimizer and learning-rate schedule from the `train` section."""

from __future__ import annotations

import keras

from kiln.config.schema import TrainConfig


def build_schedule(cfg: TrainConfig, steps_per_epoch: int, epochs: int | None = None):
    """A per-step schedule (so resuming restores its position through `optimizer.iterations`)."""
    epochs = epochs or cfg.epochs
    if epochs == "auto":  # a config used outside a run, where auto was never decided: the longest auto run
        from kiln.train.auto import EPOCHS_RANGE

        epochs = EPOCHS_RANGE[1]
    total = max(1, steps_per_epoch * epochs)
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        return keras.optimizers.schedules.ExponentialDecay(cfg.lr, steps_per_epoch * cfg.step_epochs, cfg.decay_rate, staircase=True)
    if cfg.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(cfg.lr, steps_per_epoch * cfg.step_epochs, cfg.decay_rate)
    warmup = min(int(round(cfg.warmup_epochs * steps_per_epoch)), total - 1)
    if warmup:
        return keras.optimizers.schedules.CosineDecay(0.0, total - warmup, warmup_target=cfg.lr, warmup_steps=warmup)
    return keras.optimizers.schedules.CosineDecay(cfg.lr, total)


def build_optimizer(cfg: TrainConfig, steps_per_epoch: int, epochs: int | None = None):
    lr = build_schedule(cfg, steps_per_epoch, epochs)
    name = cfg.optimizer
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if name == "adam":
        return keras.optimizers.Adam(lr)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr, momentum=cfg.momentum)
    if name == "adagrad":
        return keras.optimizers.Adagrad(lr)
    return keras.optimizers.Nadam(lr)


def current_lr(optimizer) -> float:
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))
