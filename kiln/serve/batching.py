"""Dynamic micro-batching shared by every endpoint of every task.

Requests put their inputs on one queue. A single worker takes the first waiting request, then keeps
taking more until the batch holds `max_batch_size` rows or `max_delay_ms` has passed since it
started collecting, and runs the model once on the concatenated batch in its inference thread.
While the model runs, new requests queue up, so under load batches fill without waiting.
`max_batch_size=1` turns batching off: one model call per request, in arrival order.

A request hands over model-ready inputs (an array `(n, ...)`, or a dict of arrays by input name for a
several-input signature), or rows in the task's own request form (`Pending(rows)`, or a plain list): encoded
image files, texts, table rows. The task's adapter `decode(rows) -> (inputs, {row: error})` turns every such row
of a micro-batch into model inputs in one call, in the inference thread: neither the decode nor the model call
runs on the event loop, both are shared by the batch, and a row that cannot be decoded fails only its request.

Batches are padded up to a few fixed sizes (1, 2, 4, then multiples of 8) that `warm_inputs()` runs once
at startup: every new input shape costs TensorFlow / oneDNN (and a TFLite resize) a slow first call,
which would otherwise land on live requests as tail latency.

    batcher = MicroBatcher(predict, max_batch_size=32, max_delay_ms=2, decode=adapter.decode)
    await batcher.start()
    outputs = await batcher.predict(inputs)          # model-ready (n, ...) -> the model's first output (n, ...)
    outputs = await batcher.predict(Pending(rows))   # rows the adapter decodes with the rest of the micro-batch
    await batcher.stop()
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def bucket_sizes(max_batch_size: int) -> list[int]:
    """The batch sizes the model is called with: 1, 2, 4, then multiples of 8, up to max_batch_size."""
    sizes = {s for s in (1, 2, 4) if s < max_batch_size} | set(range(8, max_batch_size, 8)) | {max_batch_size}
    return sorted(sizes)


class Pending:
    """A request's rows left for the adapter's `decode`, which runs once per micro-batch in the inference thread."""

    def __init__(self, rows: list):
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)


def count(inputs) -> int:
    """Rows in a request's inputs: an array, a dict of arrays by input name, or a list / `Pending` of rows."""
    return len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)


def take_rows(outputs, index):
    """Rows `index` of the model's output, or of every named output (a dict)."""
    return {k: v[index] for k, v in outputs.items()} if isinstance(outputs, dict) else outputs[index]


def _concat(parts: list):
    if isinstance(parts[0], dict):
        return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class MicroBatcher:
    def __init__(self, predict, max_batch_size: int = 32, max_delay_ms: float = 2.0, metrics=None, decode=None,
                 all_outputs: bool = False):
        self.predict_fn = predict
        # every named output (a dict) per request, for an adapter that answers them all; else the first output
        self.all_outputs = all_outputs and len(getattr(predict, "output_names", ())) > 1
        self.decode = decode  # the adapter's: [rows] -> (model inputs, {row index: error}); needed for rows
        self.max_batch_size = max(1, int(max_batch_size))
        self.buckets = bucket_sizes(self.max_batch_size)
        self.max_delay = max(0.0, float(max_delay_ms)) / 1000.0
        self.metrics = metrics
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._carry = None  # a request that did not fit the previous batch

    def warm_inputs(self, inputs) -> None:
        """Call the model once at every bucket size with `inputs` (one row or more, e.g. a dict by input name)."""
        for n in self.buckets:
            self.predict_fn(self._padded(inputs, n))

    def _padded(self, batch, size: int | None = None):
        n = count(batch)
        size = size or next((b for b in self.buckets if b >= n), n)  # a request larger than max_batch_size runs as it is
        if size == n:
            return batch
        if isinstance(batch, dict):  # named inputs of any dtype (strings too): the last row repeated
            return {k: np.concatenate([v, np.repeat(v[-1:], size - n, axis=0)]) for k, v in batch.items()}
        return np.concatenate([batch, np.zeros((size - n, *batch.shape[1:]), batch.dtype)])

    def _call(self, batch):
        """The model on one padded batch; a predictor with several named outputs answers all of them (a dict)."""
        n = count(batch)
        if self.all_outputs:
            return {k: v[:n] for k, v in self.predict_fn.outputs(self._padded(batch)).items()}
        return self.predict_fn(self._padded(batch))[:n]

    def _assemble(self, parts: list):
        """The requests' inputs -> one model batch, and {request index: error} for requests a row of which could not
        be decoded. Model-ready parts are concatenated; otherwise every part's rows go through one `decode` call."""
        if all(isinstance(p, (np.ndarray, dict)) for p in parts):
            return _concat(parts), {}
        if self.decode is None:
            raise RuntimeError("rows need a batcher with decode=")
        rows, owner = [], []
        for k, part in enumerate(parts):
            part_rows = part.rows if isinstance(part, Pending) else list(part)
            rows += part_rows
            owner += [k] * len(part_rows)
        inputs, bad = self.decode(rows)
        failed = {}
        for j, err in bad.items():
            failed.setdefault(owner[j], err)
        return inputs, failed

    def _infer(self, parts: list) -> tuple[np.ndarray, np.ndarray, dict[int, Exception]]:
        """In the inference thread: decode + model for one micro-batch."""
        batch, failed = self._assemble(parts)
        return batch, self._call(batch), failed

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        # One inference thread: models use all cores inside a call, and TFLite interpreters are not thread-safe.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiln-infer")
        self._task = asyncio.get_running_loop().create_task(self._worker(), name="kiln-batcher")

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker."""
        if self._task is None:
            return
        while (self._carry is not None or not self._queue.empty()) and not self._task.done():
            await asyncio.sleep(0.005)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._executor.shutdown(wait=True)
        self._task = None

    async def predict(self, images) -> np.ndarray:
        """Model-ready inputs `(n, ...)` (or a dict of them), or `Pending(rows)` / a list of rows for the adapter's
        decode -> the model's output for those n rows (its first output; every named output, as a dict, when the
        batcher was made with all_outputs=True and the predictor has several), batched with other callers."""
        if self._task is None:
            raise RuntimeError("the batcher is not running")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((images, future, time.perf_counter()))
        return await future

    async def _next(self, timeout: float | None):
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        if timeout is None:
            return await self._queue.get()
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._next(None)
            items, n = [first], count(first[0])
            deadline = loop.time() + self.max_delay
            while n < self.max_batch_size:
                item = await self._next(deadline - loop.time())
                if item is None:
                    break
                if n + count(item[0]) > self.max_batch_size:
                    self._carry = item
                    break
                items.append(item)
                n += count(item[0])
            items = [it for it in items if not it[1].done()]  # callers that went away
            if not items:
                continue
            await self._run(loop, items)

    async def _run(self, loop, items) -> None:
        started = time.perf_counter()
        try:
            batch, probs, failed = await loop.run_in_executor(self._executor, self._infer, [it[0] for it in items])
        except Exception as err:  # the model failed: every caller of this batch gets the error
            for _, future, _ in items:
                if not future.done():
                    future.set_exception(err)
            return
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.batch_done(count(batch), seconds, [started - t for _, _, t in items])
        i = 0
        for k, (images, future, _) in enumerate(items):
            if not future.done():
                if k in failed:
                    future.set_exception(failed[k])
                else:
                    future.set_result(take_rows(probs, slice(i, i + count(images))))
            i += count(images)
