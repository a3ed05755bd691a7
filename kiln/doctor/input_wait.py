"""`InputTimer`: the share of step time a run spends waiting for its next batch, timed on a sample of steps.

Keras's compiled train step takes its batch from the dataset iterator inside the graph, so that wait cannot be
timed from a callback. On a sampled step the timer wraps `model.train_function`: it takes the batch from the
iterator itself (eager `get_next`, timed), copies it into variables that a one-batch replay iterator with the
same element spec reads, and calls Keras's own train function on that replay iterator (same concrete function,
no retrace). The batches, their order and the step are unchanged, so a run trains bit for bit the same; every
other step is Keras's own, untouched.

The wait is the time `get_next` blocked less its dispatch cost (an eager `get_next` on the replay iterator,
whose element is already in memory: the fastest a batch can arrive); the share is the sum of waits over the
sum of the sampled steps' times. Steps are sampled about one in N, N chosen so that the extra work of a sampled
step (the dispatch and the copy) takes about `budget` of the step time, and the last step of every epoch whose
step count is known is sampled too: the first steps of an epoch take batches that prefetching stocked while the
previous epoch was validated, so the last step shows the pipeline's own pace.

    timer = InputTimer(budget=0.005)
    timer.attach(model)            # on_train_begin, after Keras made its train function
    timer.begin_epoch(steps)       # on_epoch_begin
    timer.step_begin(k)            # on_train_batch_begin: k = step in the epoch (1-based)
    timer.step_end(seconds, recent)  # on_train_batch_end: recent = the last steps' seconds
    share, batch = timer.epoch()   # on_epoch_end (None, None: no step was sampled)
    timer.detach(model)            # on_train_end
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

log = logging.getLogger("kiln.doctor")

FIRST_EVERY = 4  # steps between samples until a sampled step's cost is known


class InputTimer:
    """Times the wait for input on about one step in N (see the module docstring).

    Args:
        budget: the share of step time the sampled steps' extra work may take. Defaults to `0.005`.
    """

    def __init__(self, budget: float = 0.005):
        self.budget = budget
        self.off: str | None = None  # why input is not timed, once known
        self._replay = self._vars = None
        self._floor = None  # seconds an eager get_next takes on a batch already in memory
        self._costs: list[float] = []  # extra seconds a sampled step took (dispatch floor + copy)
        self._every = FIRST_EVERY
        self._count = 0  # steps seen, all epochs and fits
        self._next = FIRST_EVERY  # the step count at which the next sample is due
        self._due = False
        self._pending = None  # (wait, copy seconds, batch size) of the step now running
        self._steps = None
        self._sampled = 0
        self._waits: list[float] = []
        self._spent: list[float] = []
        self._batch = 0

    # ------------------------------------------------------------------ the wrapper
    def attach(self, model) -> None:
        """Wrap `model.train_function` (made by Keras before `on_train_begin`) so sampled steps are timed."""
        fn = getattr(model, "train_function", None)
        if self.off or fn is None or getattr(fn, "_kiln_timer", None) is self:
            return
        if int(getattr(model, "steps_per_execution", 1) or 1) != 1:
            self.off = "steps_per_execution > 1"
            return
        import tensorflow as tf

        def train_function(iterator):
            if not self._due or not isinstance(iterator, tf.data.Iterator):
                return fn(iterator)
            return self._timed(fn, iterator)

        train_function._kiln_timer = self
        train_function._kiln_original = fn
        model.train_function = train_function

    def detach(self, model) -> None:
        fn = getattr(model, "train_function", None)
        if getattr(fn, "_kiln_timer", None) is self:
            model.train_function = fn._kiln_original

    def _timed(self, fn, iterator):
        import tensorflow as tf

        if self._replay is None and not self._make_replay(iterator):
            return fn(iterator)
        start = time.perf_counter()
        batch = iterator.get_next()  # at the end of the data this raises OutOfRangeError, as Keras's own step does
        got = time.perf_counter()
        flat = tf.nest.flatten(batch)
        for variable, tensor in zip(self._vars, flat):
            variable.assign(tensor)
        copied = time.perf_counter()
        if self._floor is None:  # the first timed step measures the dispatch cost instead (the replay now holds a batch)
            self._floor = min(_seconds(self._replay.get_next) for _ in range(3))
            self._due = False
        else:
            self._pending = (max(0.0, got - start - self._floor), copied - got, int(flat[0].shape[0] or 0) if flat[0].shape.rank else 0)
        return fn(self._replay)

    def _make_replay(self, iterator) -> bool:
        """A repeating one-element dataset that reads variables, with `iterator`'s exact element spec."""
        import tensorflow as tf

        spec = iterator.element_spec
        flat = tf.nest.flatten(spec)
        if not all(type(s) is tf.TensorSpec for s in flat):
            self.off = "inputs that are not dense tensors"
            log.info("doctor: input wait not timed (%s)", self.off)
            return False
        with tf.device("/cpu:0"):  # tf.data functions run on the CPU
            self._vars = [tf.Variable(tf.zeros([0] * (s.shape.rank or 0), s.dtype) if s.dtype != tf.string else
                                      tf.fill([0] * (s.shape.rank or 0), ""), shape=tf.TensorShape(None), trainable=False)
                          for s in flat]

        def read(_):
            return tf.nest.pack_sequence_as(spec, [tf.ensure_shape(v.value(), s.shape) for v, s in zip(self._vars, flat)])

        options = tf.data.Options()  # nothing may read ahead: each element must be the batch just copied in
        options.autotune.enabled = False
        options.experimental_optimization.apply_default_optimizations = False
        options.experimental_optimization.inject_prefetch = False
        options.experimental_optimization.map_parallelization = False
        replay = tf.data.Dataset.from_tensors(0).repeat().map(read).with_options(options)
        if replay.element_spec != spec:
            self.off = f"a replay spec that differs ({replay.element_spec} vs {spec})"
            log.info("doctor: input wait not timed (%s)", self.off)
            return False
        self._replay = iter(replay)
        return True

    # ------------------------------------------------------------------ the schedule
    def begin_epoch(self, steps: int | None) -> None:
        self._steps, self._sampled = steps, 0
        self._waits, self._spent, self._batch = [], [], 0

    def step_begin(self, k: int) -> None:
        """Whether step `k` of this epoch (1-based) is timed."""
        if self.off:
            self._due = False
            return
        self._count += 1
        last = bool(self._steps) and k == self._steps  # every epoch's last step: its prefetch buffer, refilled while the
        self._due = k >= 2 and (self._count >= self._next or last)  # last epoch was validated, is drained by then

    def step_end(self, seconds: float, recent) -> None:
        """Step `seconds` long has ended; `recent`: the last steps' seconds (they set N after a sampled step)."""
        if self._pending is None:
            return
        wait, copy, batch = self._pending
        self._pending, self._due = None, False
        self._sampled += 1
        self._costs = (self._costs + [self._floor + copy])[-16:]
        self._waits.append(wait)
        self._spent.append(max(seconds - copy, wait, 1e-9))
        self._batch = max(self._batch, batch)
        if len(recent) >= 10:
            step = max(float(np.median(recent)), 1e-6)
            self._every = max(2, math.ceil(float(np.median(self._costs)) / (self.budget * step)))
        self._next = self._count + self._every

    @property
    def every(self) -> int:
        return self._every

    def epoch(self) -> tuple[float | None, int | None]:
        """(share of the sampled steps' time spent waiting, the largest batch seen) for the epoch now ending."""
        if not self._waits:
            return None, None
        return float(np.sum(self._waits) / np.sum(self._spent)), (self._batch or None)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


__all__ = ["InputTimer"]
