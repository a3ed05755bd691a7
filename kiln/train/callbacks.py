"""Callbacks for a run folder; Keras's own except the few Keras lacks: `EpochInfo` (lr and phase in
each epoch's logs), `BestCheckpoint` (an atomic best-model file) and `ResumeState` (the per-epoch
resume checkpoint, see kiln/train/resume.py)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras

from kiln.config.schema import TrainConfig
from kiln.io import LatestWriter, save_model
from kiln.train.optim import current_lr
from kiln.train.resume import STATEFUL, State, commit_state, snapshot_state


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


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard writing once per epoch, with no per-step work.

    At `update_freq="epoch"` Keras's own per-batch hook records nothing, yet it makes a summary call
    per metric at every step: ~0.5 ms a step, 2 % of a small model's training time (bench/overhead.py).
    What it would write on the first batch (the train-step graph, where there is one) is written after
    the first epoch instead."""

    on_train_batch_begin = keras.callbacks.Callback.on_train_batch_begin
    on_train_batch_end = keras.callbacks.Callback.on_train_batch_end
    on_test_batch_begin = keras.callbacks.Callback.on_test_batch_begin

    def on_epoch_end(self, epoch, logs=None):
        if self._should_write_train_graph:
            self._write_keras_model_train_graph()
            self._should_write_train_graph = False
        super().on_epoch_end(epoch, logs)


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the best model seen (by `monitor`) in `path`, written through a temp file and a rename.

    Writing a `.keras` file costs tens of milliseconds (seconds for big models), mostly Python, so
    it happens on a background thread: the training thread copies the best epoch's weights and
    optimizer state (a few ms) and goes on. The thread writes from a shadow model loaded once from the
    first file, which is written from the live model. Writes are also spaced to take at most `budget`
    of the training time, so on a small CPU machine they do not compete with training for the cores: a
    better epoch that comes too soon waits in memory and is written at the next chance or when `fit`
    ends (which waits for it). `best` carries over phases and restarts (the resume checkpoint restores it).
    """

    def __init__(self, path: Path, monitor: str, mode: str, budget: float = 0.02):
        super().__init__()
        self.path, self.monitor, self.mode, self.budget = Path(path), monitor, mode, budget
        self.best = math.inf if mode == "min" else -math.inf
        self.pending = None  # (weights, optimizer variables) of the best epoch, not yet handed to the writer
        self._cost, self._since = 0.0, time.perf_counter()  # last write's seconds; when it ended
        self._writer = self._shadow = None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        improved = current is not None and not math.isnan(float(current)) and (
            (current < self.best) if self.mode == "min" else (current > self.best))
        if improved:
            self.best = float(current)
            self.pending = self._snapshot()
        if self.pending is not None and (time.perf_counter() - self._since) * self.budget >= self._cost:
            self._write()

    def on_train_end(self, logs=None):
        if self.pending is not None:
            self._write()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def flush(self):
        """Wait until the file holds every best epoch handed to the writer."""
        if self._writer is not None:
            self._writer.flush()

    def _snapshot(self):
        store: dict = {}
        if getattr(self.model, "optimizer", None) is not None and self.model.optimizer.built:
            self.model.optimizer.save_own_variables(store)
        return self.model.get_weights(), store

    def _write(self):
        weights, store = self.pending
        self.pending = None
        if self._writer is None:  # the first file comes from the live model, with the best weights swapped in
            start = time.perf_counter()
            now = self.model.get_weights()
            try:
                self.model.set_weights(weights)
                save_model(self.model, self.path)
            finally:
                self.model.set_weights(now)
            self._timed(start)
            self._writer = LatestWriter("kiln-best-checkpoint")
        else:
            self._writer.submit(lambda: self._save_shadow(weights, store))

    def _save_shadow(self, weights, store):
        start = time.perf_counter()
        if self._shadow is None:
            self._shadow = keras.saving.load_model(self.path)
        self._shadow.set_weights(weights)
        optimizer = getattr(self._shadow, "optimizer", None)
        if store and optimizer is not None and optimizer.built and len(optimizer.variables) == len(store):
            optimizer.load_own_variables(store)
        save_model(self._shadow, self.path)
        self._timed(start)

    def _timed(self, start):
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
    each epoch end (after the history row is written). The arrays are copied on the training thread and
    written on a background one; `fit`'s end waits for the last write. A crash may leave the
    checkpoint one epoch behind history.csv, which the resume cuts back to match."""

    def __init__(self, run_dir: Path, phase: int, phase_start: int, callbacks: list, state: State | None, writer: bool = True,
                 initial_epoch: int = 0):
        super().__init__()
        self.run_dir, self.phase, self.phase_start = run_dir, phase, phase_start
        self.others, self.state, self.writer = callbacks, state, writer
        self.completed = initial_epoch
        self._writer = LatestWriter("kiln-resume-state") if writer else None

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
        arrays = snapshot_state(self.model, phase=self.phase, epoch=epoch + 1, phase_start=self.phase_start, optimizer=True,
                                stopped=bool(self.model.stop_training), callbacks=_callback_state(self.others),
                                best_weights=es.best_weights if es is not None else None)
        self._writer.submit(lambda: commit_state(self.run_dir, arrays))

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


def monitor_mode(monitor: str) -> str:
    return "min" if "loss" in monitor else "max"


def build_callbacks(cfg: TrainConfig, run_dir: Path, history_file: str = "history.csv", *, phase: int = 1,
                    append: bool = False, writer: bool = True, mode: str | None = None) -> list:
    """The callbacks of one phase. `append` continues history.csv; `writer=False` (non-chief workers) writes no file;
    `mode` (min | max) is the monitored metric's direction, the task's (CompileSpec.mode); None guesses from its name."""
    mode = mode or monitor_mode(cfg.monitor)
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
        callbacks.append(TensorBoard(str(run_dir / "tensorboard"), profile_batch=0))
    if writer:
        callbacks.append(keras.callbacks.CSVLogger(str(run_dir / history_file), append=append))
    return callbacks
