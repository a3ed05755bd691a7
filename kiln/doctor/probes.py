"""`kiln doctor RUN probe=true`: the cheap experiments a careful practitioner runs by hand, on the run's own data,
model and optimizer, each ending in a finding with its evidence (thresholds and sources: kiln/doctor/thresholds.py).

- overfit one batch: a fresh model trains on one fixed batch (8 examples) for up to 200 steps; its loss
  on that batch must fall to a quarter of where it started (Karpathy, "A Recipe for Training Neural Networks").
- an input-independent baseline: a fresh model trains on the training data with every input zeroed, so it can only
  learn one answer (the label prior); the run's val loss must beat that answer's, or its inputs carry nothing the
  model uses (the same recipe).
- a short learning-rate sweep (kiln/train/lr_find.py, 60 steps, 1e-6 to 10): the run's learning rate against the
  sweep's suggestion and the rate where its loss stops falling.
- the input pipeline alone against a training step: batches/s a fresh training pipeline delivers with nothing else
  running, against steps/s of the compiled step on a batch already in memory.

Everything goes through the run's task (`read_source`, `analyse`, `datasets`, `build_model`, `compile_spec`,
`Task.compile`), so every task gets the probes. The run folder is only read, except `probes.json`, which
`kiln doctor RUN` lists afterwards.

    from kiln.doctor.probes import probe
    findings = probe("runs/train")
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kiln.doctor.rules import Finding, _f, _g
from kiln.doctor.thresholds import T

log = logging.getLogger("kiln.doctor")

FILE = "probes.json"
OVERFIT_EXAMPLES = 8  # Karpathy: 'as little as two'; few enough that any model able to learn can memorise them
OVERFIT_STEPS = 200
ZERO_STEPS = 200  # enough for a model whose inputs are constant to learn the label prior (its output bias)
SWEEP = (1e-6, 10.0, 60)  # start lr, end lr, steps
PIPELINE_BATCHES = 20


def probe(path: str | Path) -> list[Finding]:
    """Run the four probes on the run at `path`; writes `path`/probes.json and returns the findings."""
    import keras

    from kiln.doctor.signals import load
    from kiln.io import write_json
    from kiln.train.distribute import precision_policy

    signals = load(path)  # a folder that is not a run, or one without history: one line, before TensorFlow works
    task, cfg = _task_and_config(Path(path))
    model_name = task.choose_model(cfg)
    data = task.analyse(task.read_source(cfg), cfg, model_name)
    model_name = data.model or model_name
    cfg = task.resolve_auto(cfg, data, model_name)[0]
    findings = []
    with tempfile.TemporaryDirectory(prefix="kiln-probe-") as tmp, precision_policy(cfg.train.precision):
        keras.utils.set_random_seed(cfg.seed)
        batch = task.batch_size(cfg, data)
        train_ds, val_ds, steps = task.datasets(data, cfg, Path(tmp), batch)
        lab = _Lab(task, cfg, data, model_name, steps)
        print(f"kiln: probing {model_name} ({len(data.split('train'))} training examples, batch {batch}, phase {lab.phase.index} "
              f"lr {lab.lr:g})", file=sys.stderr, flush=True)
        for name, run in (("overfit_one_batch", lambda: overfit_one_batch(lab, train_ds)),
                          ("zero_input_baseline", lambda: zero_input_baseline(lab, train_ds, val_ds, signals)),
                          ("lr_sweep", lambda: lr_sweep(lab, train_ds)),
                          ("input_pipeline", lambda: input_pipeline(lab, task, data, cfg, Path(tmp), batch, train_ds))):
            start = time.perf_counter()
            try:
                found = run()
            except Exception as err:  # noqa: BLE001 - one probe a model cannot run (a custom train_step) spares the others
                found = Finding(name, "info", f"not run: {type(err).__name__}: {str(err).splitlines()[0][:200]}",
                                "Run the check by hand", "", "")
            found.evidence = f"probe {name}: {found.evidence}"
            print(f"kiln: probe {name}: {found.severity} {found.kind} ({time.perf_counter() - start:.1f} s)", file=sys.stderr,
                  flush=True)
            findings.append(found)
    write_json(Path(path) / FILE, {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "model": model_name,
                                   "findings": [f.to_dict() for f in findings]})
    return findings


def _task_and_config(path: Path):
    """The run's task and config: run.json's task and `auto` values for a finished run, else config.yaml's."""
    from kiln.config import load_config
    from kiln.run import Run
    from kiln.tasks.base import resolve_task

    if (path / "run.json").is_file():
        run = Run(path)
        return run.task, run.config
    cfg = load_config(path / "config.yaml")
    return resolve_task(cfg), cfg


class _Lab:
    """Fresh models of the run's first phase, compiled by the task with a constant learning rate."""

    def __init__(self, task, cfg, data, model_name: str, steps: int):
        from kiln.train.phases import apply_phase, plan_phases

        self.task, self.cfg, self.data, self.model_name, self.steps = task, cfg, data, model_name, max(1, steps)
        self.model = task.build_model(model_name, data, cfg)
        self.phase = plan_phases(cfg, self.model, model_name, task.pretrained(cfg, model_name))[0]
        apply_phase(self.model, self.phase)
        self.lr = float(self.phase.lr)
        self.initial = self.model.get_weights()
        self.compiled = task.compile_spec(data, cfg)

    def fresh(self, lr: float | None = None):
        """The model back at its initial weights, compiled with a fresh optimizer at `lr` (default the phase's)."""
        import dataclasses

        from kiln.train.optim import build_optimizer

        self.model.set_weights(self.initial)
        constant = self.cfg.train.model_copy(update={"schedule": "constant", "lr": lr or self.lr, "warmup_epochs": 0.0})
        self.task.compile(self.model, build_optimizer(constant, self.steps), dataclasses.replace(self.compiled, metrics=[]),
                          self.cfg)
        return self.model


def _first(ds, limit: int | None = None):
    """The first batch of `ds` as (x, y), at most `limit` examples."""
    import tensorflow as tf

    batch = next(iter(ds.take(1)))
    if limit:
        batch = tf.nest.map_structure(lambda t: t[:limit], batch)
    return batch[0], batch[1]


def _loss(model, x, y) -> float:
    return float(model.test_on_batch(x, y, return_dict=True)["loss"])


def overfit_one_batch(lab: _Lab, train_ds) -> Finding:
    x, y = _first(train_ds, OVERFIT_EXAMPLES)
    model = lab.fresh()
    start = _loss(model, x, y)
    loss, steps = start, 0
    target = T["overfit_batch"].value * start
    while steps < OVERFIT_STEPS and loss > target:
        for _ in range(10):
            model.train_on_batch(x, y)
        steps += 10
        loss = _loss(model, x, y)
        if not math.isfinite(loss):
            break
    n = int(np.shape(y)[0]) if np.ndim(y) else 0
    evidence = f"loss on one batch of {n} examples {_g(start)} -> {_g(loss)} in {steps} steps at lr {lab.lr:g}"
    if math.isfinite(loss) and loss <= target:
        return _f("overfit_one_batch", "info", f"passed: {evidence}", "", "overfit_batch")
    return _f("cannot_overfit", "warning", f"{evidence} (the target was {_g(target)}, a quarter)",
              "Check that the labels match the inputs and the loss suits the target; then raise lr or the model's "
              "capacity (model.units, a larger model) until one batch can be learned", "overfit_batch")


def zero_input_baseline(lab: _Lab, train_ds, val_ds, signals) -> Finding:
    import tensorflow as tf

    def zeroed(ds):
        return ds.map(lambda x, *rest: (tf.nest.map_structure(tf.zeros_like, x), *rest))

    held = val_ds if val_ds is not None else train_ds
    where = "val" if val_ds is not None else "train"
    model = lab.fresh()
    model.fit(zeroed(train_ds).repeat(), steps_per_epoch=ZERO_STEPS, epochs=1, verbose=0, shuffle=False,
              class_weight=lab.compiled.class_weight)
    zero = _constant_loss(model, held)
    if not math.isfinite(zero):
        return Finding("zero_input_baseline", "info", f"not judged: the model trained on zeroed inputs reached a loss of "
                       f"{zero} at lr {lab.lr:g}", "Lower the learning rate, then probe again", "", "")
    ran = signals.column("val_loss" if where == "val" else "loss")
    if ran is not None and np.isfinite(ran).any():
        real, what = float(np.nanmin(ran)), f"the run's best {where} loss"
    else:  # a run with no finite loss in its history: the same model, same steps, real inputs
        model = lab.fresh()
        model.fit(train_ds.repeat(), steps_per_epoch=ZERO_STEPS, epochs=1, verbose=0, shuffle=False,
                  class_weight=lab.compiled.class_weight)
        real, what = float(model.evaluate(held, verbose=0, return_dict=True)["loss"]), f"{where} loss with real inputs"
    evidence = (f"{what} {_g(real)} against {_g(zero)} for the prediction of the same model trained {ZERO_STEPS} steps on "
                f"zeroed inputs" + (f" ({(zero - real) / zero:+.1%})" if zero > 0 else ""))
    if math.isfinite(real) and real < zero * (1 - T["zero_margin"].value):
        return _f("zero_input_baseline", "info", f"passed: {evidence}", "", "zero_margin")
    return _f("inputs_ignored", "error", evidence, "The model learns nothing from its inputs: check that inputs and labels "
              "are aligned (not shuffled apart), that the inputs reach the model (preprocessing, scaling), and the "
              "learning rate", "zero_margin")


def _constant_loss(model, ds) -> float:
    """The loss on `ds`'s labels of the one prediction a model trained on zeroed inputs makes.

    The prediction is its output on a zeroed batch in training mode, as it trained (in inference mode, BatchNorm's
    moving statistics, still far from a constant input's, would turn it into a confident wrong answer), averaged
    over the batch (dropout)."""
    import keras
    import tensorflow as tf

    x, y = _first(ds)
    out = model(tf.nest.map_structure(tf.zeros_like, x), training=True)
    constant = tf.nest.map_structure(lambda t: keras.ops.mean(t, axis=0, keepdims=True), out)
    total, count = 0.0, 0
    for batch in ds:
        x, y, weight = keras.utils.unpack_x_y_sample_weight(batch)
        n = int(tf.shape(tf.nest.flatten(y)[0])[0])
        pred = tf.nest.map_structure(lambda c, t: tf.broadcast_to(c, tf.concat([[n], tf.shape(t)[1:]], 0)), constant, out)
        # training=True: the loss of the output as the model gave it in training mode (an ensemble's: a list of members)
        total += float(model.compute_loss(x=x, y=y, y_pred=pred, sample_weight=weight, training=True)) * n
        count += n
    return total / max(count, 1)


def lr_sweep(lab: _Lab, train_ds) -> Finding:
    from kiln.train.lr_find import suggest, sweep

    start_lr, end_lr, steps = SWEEP
    model = lab.fresh(start_lr)
    lrs, _, smoothed = sweep(model, train_ds.repeat(), start_lr, end_lr, steps)
    if len(lrs) < 3:
        return Finding("lr_sweep", "info", f"not judged: the loss diverged in the sweep's first steps from lr {start_lr:g}",
                       "Run kiln lr-find with a lower start_lr", "", "")
    suggested, lowest = suggest(lrs, smoothed)
    evidence = (f"run lr {lab.lr:g}; a {len(lrs)}-step sweep from {start_lr:g} suggests {_g(suggested)}, its smoothed "
                f"loss is lowest at {_g(lowest)}")
    if lab.lr >= lowest:
        return _f("lr_too_high", "warning", evidence, f"Lower lr to about {_g(suggested)} (kiln lr-find shows the curve)",
                  "sweep_high")
    if lab.lr * T["sweep_low"].value < suggested:
        return _f("lr_too_low", "warning", evidence, f"Raise lr to about {_g(suggested)} (kiln lr-find shows the curve)",
                  "sweep_low")
    return _f("lr_sweep", "info", f"passed: {evidence}", "", "sweep_low")


def input_pipeline(lab: _Lab, task, data, cfg, tmp: Path, batch: int, train_ds) -> Finding:
    fresh_ds = task.datasets(data, cfg, tmp / "pipeline", batch)[0]  # its own iterator: nothing cached by the others
    n = max(2, min(PIPELINE_BATCHES, lab.steps))
    it = iter(fresh_ds.repeat())
    next(it)  # the first batch fills shuffle buffers and starts threads
    start = time.perf_counter()
    for _ in range(n):
        next(it)
    pipeline = (time.perf_counter() - start) / n
    x, y = _first(train_ds)
    model = lab.fresh()
    for _ in range(2):  # the first call traces the step
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(n):
        model.train_on_batch(x, y)
    step = (time.perf_counter() - start) / n
    ratio = pipeline / max(step, 1e-9)
    evidence = (f"the training pipeline alone delivers {1 / pipeline:,.1f} batches/s; a training step on a batch in memory "
                f"runs {1 / step:,.1f} steps/s (pipeline time / step time {ratio:.2f}, {n} batches each)")
    if ratio > T["pipeline_ratio"].value:
        return _f("input_bound", "warning", evidence, "Cache decoded data (data.cache=memory), parallelise and prefetch the "
                  "pipeline, or raise the batch size", "pipeline_ratio")
    return _f("input_pipeline", "info", f"passed: {evidence}", "", "pipeline_ratio")


__all__ = ["FILE", "probe"]
