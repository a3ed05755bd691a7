"""`Recorder`: the training signals `kiln doctor` reads, written to RUN/diagnostics.csv (and TensorBoard).

One row per measurement, `epoch,step,signal,layer,value` (`layer` is empty for whole-model signals):

- at the first step: `init_loss` (the loss on a held batch before any update) and `expected_init_loss` (the same
  loss for an uninformed prediction: uniform probabilities, else the batch's mean target);
- every N steps (`every`; auto: N chosen so sampling takes about `budget` of the training time): on the held
  batch, `loss`, the global `grad_norm`, per layer `grad_norm`, `grad_rms`, `weight_norm`, the next step's
  `update_ratio` (|update| / |weights|) and `dead_share` of ReLU units (active on under 1 % of the batch),
  `nonfinite_grads`, and the optimizer's `lr`;
- each epoch: `examples_per_s`, `input_wait` (the share of step time spent waiting for the next batch),
  `step_seconds` (median), `cpu_util` (process CPU time / wall time / cores), `rss_mb`, and on a GPU `gpu_mem_mb`,
  `gpu_peak_mb`, `gpu_util`;
- `nonfinite_loss` at the first step whose loss is NaN or Inf, and `stopped` (layer: finished | nonfinite_loss |
  early_stopping | interrupted) when training ends.

The held batch comes from the first batch of `sample` (validation data, so nothing is shuffled, augmented or
decoded twice); its gradient is computed eagerly, without touching the optimizer, and every non-trainable
variable (BatchNorm statistics, dropout seeds, metric totals) is put back afterwards, so a run trains the same
with or without the recorder. Waiting for input is timed on a sample of steps only (about one in N, N chosen so
the timing costs about `budget` / 2 of the step time, and each epoch's last step): on such a step the recorder
takes the batch from Keras's iterator itself (the time `get_next` blocked, less its dispatch cost measured on a
batch already in memory, is the wait), then runs Keras's own compiled step on that same batch through a one-batch
replay iterator of the same element spec (no retrace; the same batches in the same order). Every other step is
Keras's, untouched. Rows are appended once an epoch as whole lines (a reader drops a cut-short last line); a
resumed run drops the rows of epochs it repeats.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import shutil
import subprocess
import time
from pathlib import Path

import keras
import numpy as np

from kiln.doctor.input_wait import InputTimer
from kiln.doctor.signals import COLUMNS, FILE

log = logging.getLogger("kiln.doctor")

DEAD_ACTIVE = 0.01  # a ReLU unit active on under 1 % of the batch is dead (SageMaker Debugger's dead_relu rule)
HELD_EXAMPLES = 64  # the held batch: at most this many examples of the first validation batch
RELU = ("relu", "relu6")


def _layer_of(variable) -> str:
    path = getattr(variable, "path", None) or variable.name
    return path.rsplit("/", 1)[0] if "/" in path else path


def _relu_layers(model) -> list:
    """Top-level layers whose output is a ReLU's (Dense/Conv with activation=relu, Activation('relu'), ReLU)."""
    found = []
    for layer in model.layers:
        act = getattr(layer, "activation", None)
        name = getattr(act, "__name__", None) or (act if isinstance(act, str) else "")
        if name in RELU or type(layer).__name__ == "ReLU":
            found.append(layer)
    return found


class Recorder(keras.callbacks.Callback):
    """Records gradients, weights, dead units, losses and resources into `run_dir`/diagnostics.csv.

    Args:
        run_dir: the run folder.
        sample: a dataset whose first batch is held for the gradient samples (None: none are taken).
        every: steps between gradient samples, or "auto". Defaults to `"auto"`.
        budget: with every="auto", the share of training time the gradient samples may take (input timing takes
            half as much again). Defaults to `0.01`.
        tensorboard: also write the per-epoch signals under `run_dir`/tensorboard/diagnostics. Defaults to `False`.
    """

    def __init__(self, run_dir, sample=None, every="auto", budget: float = 0.01, tensorboard: bool = False):
        super().__init__()
        self.path = Path(run_dir) / FILE
        self.sample, self.every, self.budget, self.tensorboard = sample, every, budget, tensorboard
        self.step = 0  # optimizer steps taken in this process (all phases)
        self.epoch = 0
        self.rows: list[tuple] = []
        self.reason = None  # why training stopped, when known
        self._held = self._probe = None
        self._disabled = None  # why gradient samples are off
        self._next_sample = None  # None: decided once a few steps are timed
        self._last_sample = 0
        self._nonfinite = False
        self._recent = collections.deque(maxlen=64)  # the last steps' seconds, across epochs
        self._sample_cost = 0.0
        self._snapshot = None
        self._truncated = False
        self._input = InputTimer(budget=budget / 2)
        self._writer = None
        self._nvidia = shutil.which("nvidia-smi")

    # ------------------------------------------------------------------ keras hooks
    def on_train_begin(self, logs=None):
        self._begins: list[float] = []
        self._ends: list[float] = []
        self._fresh = True  # the first step of a fit traces the train function: not a step to time
        if self._held is None and self._disabled is None:
            self._prepare()
        self._input.attach(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if not self._truncated:
            self._truncate(epoch)
        self._begins, self._ends = [], []
        if self._held is not None and self.step == 0:
            if epoch == 0:
                self._init_loss()  # a resumed run is not at its initialisation: it samples after its first step
            else:
                self._next_sample = 1
        self._epoch_start = time.time()
        self._cpu_start = sum(os.times()[:2])
        self._input.begin_epoch(self.params.get("steps") if self.params else None)

    def on_train_batch_begin(self, batch, logs=None):
        self._begins.append(time.time())
        self._input.step_begin(len(self._begins))
        if self._snapshot is True:
            self._snapshot = [keras.ops.copy(v.value) for v in self.model.trainable_variables]

    def on_train_batch_end(self, batch, logs=None):
        self._ends.append(time.time())
        self._input.step_end(self._ends[-1] - self._begins[-1], self._recent)
        if not (self._fresh and len(self._ends) == 1):
            self._recent.append(self._ends[-1] - self._begins[-1])
        self.step += 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and not self._nonfinite:
            self._nonfinite = True
            self._row("nonfinite_loss", float(batch), step=self.step)
        if isinstance(self._snapshot, list):
            self._update_ratios(self._snapshot)
            self._snapshot = None
        if self._held is None or self._nonfinite:
            return
        if self._next_sample is None and len(self._recent) >= 10:
            self._next_sample = self._last_sample + self._interval()
        if self._next_sample is not None and self.step >= self._next_sample:
            self._sample()

    def on_epoch_end(self, epoch, logs=None):
        self._resources(epoch)
        self._flush()

    def on_train_end(self, logs=None):
        self._input.detach(self.model)
        if self._held is not None and not self._nonfinite and self._last_sample != self.step:
            self._sample()  # the state training ended in
        if getattr(self.model, "stop_training", False) and not self._nonfinite:
            self._row("early_stop", float(self.epoch + 1))
        self._flush()

    def close(self, reason: str | None = None) -> None:
        """Training is over (`reason`: interrupted, ...): write the `stopped` row and what is buffered."""
        self.reason = "nonfinite_loss" if self._nonfinite else (reason or "finished")
        if self.model is not None:
            self._input.detach(self.model)
        self._row("stopped", float(self.epoch + 1), layer=self.reason)
        self._flush()
        if self._writer is not None:
            self._writer.close()

    # ------------------------------------------------------------------ gradient samples
    def _prepare(self) -> None:
        import tensorflow as tf

        if self.sample is None:
            self._disabled = "no sample data"
            return
        if self.model.distribute_strategy.num_replicas_in_sync > 1:
            self._disabled = "several replicas"
            return
        try:
            batch = next(iter(self.sample.take(1)))
            batch = tf.nest.map_structure(lambda t: t[:HELD_EXAMPLES], batch)
        except Exception as err:  # noqa: BLE001 - recording must never stop training
            self._disabled = f"{type(err).__name__}: {err}"
            log.info("doctor: no gradient samples (%s)", self._disabled)
            return
        self._held, self._relu_names = batch, []
        try:
            relus = _relu_layers(self.model)
            outputs = list(self.model.outputs)
            self._probe = keras.Model(self.model.inputs, outputs + [layer.output for layer in relus]) if relus else None
            self._relu_names = [layer.name for layer in relus]
            self._n_out = len(outputs)
        except Exception as err:  # noqa: BLE001 - a subclassed model (an ensemble) has no symbolic outputs: its own
            self._probe = None  # call gives the loss and gradients, without the dead-unit shares
            log.info("doctor: no dead-unit shares (%s: %s)", type(err).__name__, err)

    def _forward(self, x, training: bool):
        import tensorflow as tf

        if self._probe is None:
            return self.model(x, training=training), []
        outs = self._probe(x, training=training)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        y_pred = outs[0] if self._n_out == 1 else tf.nest.pack_sequence_as(self.model.output, outs[:self._n_out])
        return y_pred, outs[self._n_out:]

    def _keep_state(self):
        """Copies of the variables a forward pass may change (BatchNorm statistics, seeds, metric totals)."""
        variables = [v for v in self.model.non_trainable_variables] + list(getattr(self.model, "metrics_variables", []))
        return variables, [keras.ops.copy(v.value) for v in variables]

    def _loss_and_grads(self, want_grads: bool = True):
        import tensorflow as tf

        x, y, weight = keras.utils.unpack_x_y_sample_weight(self._held)
        variables, saved = self._keep_state()
        try:
            with tf.GradientTape() as tape:
                y_pred, acts = self._forward(x, training=True)
                loss = self.model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=weight, training=True)
            grads = tape.gradient(loss, self.model.trainable_variables) if want_grads else None
        finally:
            for v, value in zip(variables, saved):
                v.assign(value)
        return float(loss), grads, acts, (x, y, weight, y_pred)

    def _init_loss(self) -> None:
        try:
            loss, _, _, (x, y, weight, y_pred) = self._loss_and_grads(want_grads=False)
        except Exception as err:  # a loss the spine cannot call on its own (a custom train_step)
            self._held, self._disabled = None, f"{type(err).__name__}: {err}"
            log.info("doctor: no gradient samples (%s)", self._disabled)
            return
        self._row("init_loss", loss, step=0)
        expected = self._expected_loss(x, y, weight, y_pred)
        if expected is not None:
            self._row("expected_init_loss", expected[0], step=0, layer=expected[1])
        self._sample()  # the first gradient sample, before any update

    def _expected_loss(self, x, y, weight, y_pred):
        """(loss of an uninformed prediction, what it was): uniform probabilities when the output is a
        distribution over classes, else the batch's mean target."""
        import tensorflow as tf

        if not isinstance(y_pred, tf.Tensor) or not isinstance(y, tf.Tensor):
            return None
        p = y_pred.numpy().astype(np.float64)
        k = p.shape[-1] if p.ndim >= 2 else 1
        if k > 1 and p.min() >= 0 and np.allclose(p.sum(-1), 1.0, atol=1e-3):
            pred, what = tf.fill(tf.shape(y_pred), tf.constant(1.0 / k, y_pred.dtype)), f"uniform over {k} classes"
        elif tuple(y.shape) == tuple(y_pred.shape):
            pred, what = tf.broadcast_to(tf.reduce_mean(tf.cast(y, y_pred.dtype), axis=0, keepdims=True), tf.shape(y_pred)), "mean target"
        else:
            return None
        try:
            return float(self.model.compute_loss(x=x, y=y, y_pred=pred, sample_weight=weight, training=False)), what
        except Exception:  # noqa: BLE001 - an expected value is a bonus, never a failure
            return None

    def _sample(self) -> None:
        start = time.perf_counter()
        try:
            loss, grads, acts, _ = self._loss_and_grads()
        except Exception as err:  # noqa: BLE001 - recording must never stop training
            self._held, self._disabled = None, f"{type(err).__name__}: {err}"
            log.info("doctor: gradient samples stopped (%s)", self._disabled)
            return
        self._row("loss", loss)
        self._row("lr", _lr(self.model.optimizer))
        per_layer: dict[str, list] = {}
        total, nonfinite = 0.0, 0
        for v, g in zip(self.model.trainable_variables, grads):
            if g is None:
                continue
            sparse = hasattr(g, "indices")
            g = np.asarray(g.values if sparse else g, np.float64)
            bad = int(g.size - np.isfinite(g).sum())
            nonfinite += bad
            sq = float(np.sum(np.square(g[np.isfinite(g)]))) if bad else float(np.sum(np.square(g)))
            w = np.asarray(v.value, np.float64)
            entry = per_layer.setdefault(_layer_of(v), [0.0, 0, 0.0, sparse])
            entry[0] += sq
            entry[1] += int(np.prod(v.shape)) if not sparse else 0
            entry[2] += float(np.sum(np.square(w)))
            entry[3] = entry[3] or sparse
            total += sq
        self._row("grad_norm", math.sqrt(total))
        self._row("nonfinite_grads", float(nonfinite))
        for layer, (sq, n, wsq, sparse) in per_layer.items():
            self._row("grad_norm", math.sqrt(sq), layer=layer)
            self._row("weight_norm", math.sqrt(wsq), layer=layer)
            if n and not sparse:
                self._row("grad_rms", math.sqrt(sq / n), layer=layer)
        for name, a in zip(getattr(self, "_relu_names", []), acts):
            a = np.asarray(a)
            active = (a.reshape(-1, a.shape[-1]) > 0).mean(axis=0) if a.ndim >= 2 else (a > 0).mean(keepdims=True)
            self._row("dead_share", float((active < DEAD_ACTIVE).mean()), layer=name)
        self._snapshot = True  # the next step's update, measured against the weights before it
        self._sample_cost = time.perf_counter() - start
        self._last_sample = self.step
        self._next_sample = self.step + self._interval() if (self.every != "auto" or len(self._recent) >= 10) else None

    def _interval(self) -> int:
        """Steps to the next sample: `every`, or (auto) so that samples take `budget` of the step time."""
        if self.every != "auto":
            return int(self.every)
        step_seconds = float(np.median(self._recent))
        interval = max(1, math.ceil(self._sample_cost / (self.budget * max(step_seconds, 1e-6))))
        self._row("every", float(interval))
        return interval

    def _update_ratios(self, before: list) -> None:
        per_layer: dict[str, list] = {}
        for v, b in zip(self.model.trainable_variables, before):
            b = np.asarray(b, np.float64)
            d = np.asarray(v.value, np.float64) - b
            entry = per_layer.setdefault(_layer_of(v), [0.0, 0.0])
            entry[0] += float(np.sum(np.square(d)))
            entry[1] += float(np.sum(np.square(b)))
        for layer, (dsq, wsq) in per_layer.items():
            if wsq > 0:  # against the weights before the update; a layer that starts at zero has no ratio yet
                self._row("update_ratio", math.sqrt(dsq / wsq), layer=layer)

    # ------------------------------------------------------------------ per epoch
    def _resources(self, epoch: int) -> None:
        now = time.time()
        wall = max(now - self._epoch_start, 1e-9)
        skip = 1 if self._fresh and len(self._ends) > 1 else 0
        self._fresh = False
        steps = [e - b for b, e in zip(self._begins, self._ends)][skip:]
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self._row("cpu_util", (sum(os.times()[:2]) - self._cpu_start) / wall / cores)
        self._row("rss_mb", _rss_mb())
        if steps:
            self._row("step_seconds", float(np.median(steps)))
        share, batch = self._input.epoch()
        if share is not None:
            self._row("input_wait", share)
        if batch and self._ends:  # steps x the batch size: a short last batch counts as a whole one
            self._row("examples_per_s", len(self._ends) * batch / max(self._ends[-1] - self._epoch_start, 1e-9))
        self._gpu()

    def _gpu(self) -> None:
        import tensorflow as tf

        if not tf.config.list_logical_devices("GPU"):
            return
        try:
            info = tf.config.experimental.get_memory_info("GPU:0")
            self._row("gpu_mem_mb", info["current"] / 2**20)
            self._row("gpu_peak_mb", info["peak"] / 2**20)
        except (ValueError, RuntimeError):
            pass
        if self._nvidia:
            try:
                out = subprocess.run([self._nvidia, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                                     capture_output=True, text=True, timeout=5).stdout.strip().splitlines()
                self._row("gpu_util", float(out[0]) / 100.0)
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                self._nvidia = None

    # ------------------------------------------------------------------ the file
    def _row(self, signal: str, value: float, step: int | None = None, layer: str = "") -> None:
        self.rows.append((self.epoch, self.step if step is None else step, signal, layer, value))

    def _truncate(self, epoch: int) -> None:
        """A resumed run repeats no epoch: rows of epochs from `epoch` on are dropped (atomically)."""
        self._truncated = True
        if epoch == 0 or not self.path.is_file():
            return
        from kiln.io import atomic_path

        with open(self.path) as f:
            lines = f.read().splitlines(keepends=True)
        keep = lines[:1] + [line for line in lines[1:] if line.endswith("\n") and line.split(",", 1)[0].isdigit()
                            and int(line.split(",", 1)[0]) < epoch]
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(keep))

    def _flush(self) -> None:
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        new = not self.path.is_file() or self.path.stat().st_size == 0
        text = "".join(f"{e},{s},{sig},{layer},{v:.6g}\n" for e, s, sig, layer, v in rows)
        with open(self.path, "a") as f:
            f.write((",".join(COLUMNS) + "\n" if new else "") + text)
        if self.tensorboard:
            self._summaries(rows)

    def _summaries(self, rows) -> None:
        """TensorBoard scalars through TensorBoard's own event writer (~15 us a scalar; tf.summary eagerly: ~300)."""
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        if self._writer is None:
            self._writer = EventFileWriter(str(self.path.parent / "tensorboard" / "diagnostics"))
        now = time.time()
        for epoch, step, signal, layer, value in rows:
            if math.isfinite(value):
                tag = f"doctor/{signal}" + (f"/{layer}" if layer else "")
                summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])
                self._writer.add_event(event_pb2.Event(wall_time=now, step=int(step), summary=summary))
        self._writer.flush()


def _lr(optimizer) -> float:
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except Exception:  # noqa: BLE001 - an optimizer without one
        return float("nan")


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, in KiB on Linux


__all__ = ["COLUMNS", "FILE", "Recorder"]
