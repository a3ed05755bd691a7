"""Callbacks for a run folder; Keras's own except the few Keras lacks: `EpochInfo` (lr and phase in
each epoch's logs), `BestCheckpoint` (an atomic best-model file) and `ResumeState` (the per-epoch
resume checkpoint, see kiln/train/resume.py)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras

from kiln.config.schema import TrainConfig
from kiln.io import save_model
from kiln.train.optim import current_lr
from kiln.train.resume import STATEFUL, State, write_state


class EpochInfo(keras.callbacks.Callback):
    """Adds the optimizer's current `lr`, the training `phase` and `epoch_seconds` (wall time since the
    previous epoch ended, every callback included) to each epoch's logs (history.csv, plots)."""

    def __init__(self, phase: int = 1):
        super().__init__()
        self.phase = phase
        self._last = None

    def on_train_begin(self, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        if logs is not None:
            logs["lr"] = current_lr(self.model.optimizer)
            logs["phase"] = self.phase
            if self._last is not None:
                logs["epoch_seconds"] = round(now - self._last, 4)
        self._last = now




class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the best model seen (by `monitor`) in `path`, written through a temp file and a rename.

    Writing a `.keras` file costs tens of milliseconds (more for big models), a real share of short
    epochs, so writes are spaced to take at most `budget` of the training time: a better epoch that
    comes too soon after a write waits in memory (its weights, copied) and is written at the next
    chance or when `fit` ends. The file on disk lags the best epoch by at most ~(write time / budget)
    of training. `best` carries over phases and restarts (the resume checkpoint restores it).
    """

    def __init__(self, path: Path, monitor: str, mode: str, budget: float = 0.02):
        super().__init__()
        self.path, self.monitor, self.mode, self.budget = Path(path), monitor, mode, budget
        self.best = math.inf if mode == "min" else -math.inf
        self.pending = None  # best weights not yet on disk
        self._cost, self._since = 0.0, time.perf_counter()  # last write's seconds; when it ended

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        improved = current is not None and not math.isnan(float(current)) and (
            (current < self.best) if self.mode == "min" else (current > self.best))
        if improved:
            self.best = float(current)
            self.pending = None
        if (improved or self.pending is not None) and (time.perf_counter() - self._since) * self.budget >= self._cost:
            self._write(None if improved else self.pending)
        elif improved:
            self.pending = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.pending is not None:
            self._write(self.pending)

    def _write(self, weights):
        """Save the model as it is, or with `weights` swapped in for the write."""
        start = time.perf_counter()
        now = self.model.get_weights() if weights is not None else None
        try:
            if weights is not None:
                self.model.set_weights(weights)
            save_model(self.model, self.path)
        finally:
            if now is not None:
                self.model.set_weights(now)
        self.pending = None
        self._since = time.perf_counter()
        self._cost = self._since - start


def _plain(value):
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _callback_state(callbacks: list) -> dict:
    out = {}
    for cb in callbacks:
        attrs = STATEFUL.get(type(cb).__name__)
        if attrs:
            out[type(cb).__name__] = {a: _plain(getattr(cb, a, None)) for a in attrs}
    return out


def _early_stopping(callbacks: list):
    for cb in callbacks:
        if type(cb).__name__ == "EarlyStopping":
            return cb
    return None


class ResumeState(keras.callbacks.Callback):
    """Last in the callback list: restores the others' counters at train begin, commits a checkpoint at
    each epoch end (after the history row is written)."""

    def __init__(self, run_dir: Path, phase: int, phase_start: int, callbacks: list, state: State | None, writer: bool = True,
                 initial_epoch: int = 0):
        super().__init__()
        self.run_dir, self.phase, self.phase_start = run_dir, phase, phase_start
        self.others, self.state, self.writer = callbacks, state, writer
        self.completed = initial_epoch

    def on_train_begin(self, logs=None):
        if self.state is None:
            return
        for cb in self.others:
            saved = self.state.callbacks.get(type(cb).__name__)
            for attr, value in (saved or {}).items():
                if value is not None:
                    setattr(cb, attr, int(value) if attr in ("wait", "best_epoch", "stopped_epoch", "cooldown_counter") else value)
        es = _early_stopping(self.others)
        if es is not None and self.state.best_weights is not None:
            es.best_weights = self.state.best_weights

    def on_epoch_end(self, epoch, logs=None):
        self.completed = epoch + 1
        if not self.writer:
            return
        es = _early_stopping(self.others)
        write_state(self.run_dir, self.model, phase=self.phase, epoch=epoch + 1, phase_start=self.phase_start,
                    optimizer=True, stopped=bool(self.model.stop_training), callbacks=_callback_state(self.others),
                    best_weights=es.best_weights if es is not None else None)


def monitor_mode(monitor: str) -> str:
    return "min" if "loss" in monitor else "max"


def build_callbacks(cfg: TrainConfig, run_dir: Path, history_file: str = "history.csv", *, phase: int = 1,
                    append: bool = False, writer: bool = True) -> list:
    """The callbacks of one phase. `append` continues history.csv; `writer=False` (non-chief workers) writes no file."""
    mode = monitor_mode(cfg.monitor)
    callbacks = [keras.callbacks.TerminateOnNaN(), EpochInfo(phase)]
    if writer:
        callbacks.append(BestCheckpoint(run_dir / "checkpoints" / "best.keras", cfg.monitor, mode))
    if cfg.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=cfg.monitor, mode=mode, patience=cfg.patience,
                                                       restore_best_weights=True, verbose=1))
    if cfg.reduce_lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=cfg.monitor, mode=mode, patience=cfg.reduce_lr_patience,
                                                           factor=0.2, verbose=1))
    if writer and cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), profile_batch=0))
    if writer:
        callbacks.append(keras.callbacks.CSVLogger(str(run_dir / history_file), append=append))
    return callbacks
