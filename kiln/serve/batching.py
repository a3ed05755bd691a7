"""Dynamic micro-batching shared by every endpoint.

Requests put their images on one queue. A single worker takes the first waiting request, then keeps
taking more until the batch holds `max_batch_size` images or `max_delay_ms` has passed since it
started collecting, and runs the model once on the concatenated batch in its inference thread.
While the model runs, new requests queue up, so under load batches fill without waiting.
`max_batch_size=1` turns batching off: one model call per request, in arrival order.

A request may also hand over a dict of arrays by input name (a several-input signature, e.g. one per
table column), or `Pending(rows)`: rows in the task's own request form that the adapter's `decode`
turns into model inputs for the whole micro-batch at once (`decode(rows) -> (inputs, {row: error})`).

A request's images are a uint8 array `(n, H, W, C)` or a list of rows, each an `(H, W, C)` array or
encoded file bytes (checked by the request, see `kiln.tasks.image.serve.inputs.prepare_images`). The inference
thread decodes every encoded row of a micro-batch in one `decode` call (`BatchDecoder`), then runs the
model: neither the decode nor the model call runs on the event loop, and both are shared by the batch.

Batches are zero-padded up to a few fixed sizes (1, 2, 4, then multiples of 8) that `warm()` runs once
at startup: every new input shape costs TensorFlow / oneDNN (and a TFLite resize) a slow first call,
which would otherwise land on live requests as tail latency.

    batcher = MicroBatcher(predict, max_batch_size=32, max_delay_ms=2, decode=BatchDecoder(spec))
    await batcher.start()
    probs = await batcher.predict(images)   # (n, H, W, C) uint8 -> (n, K) float32
    probs = await batcher.predict([png_bytes, pixels])   # rows: encoded files and/or (H, W, C) arrays
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


def _concat(parts: list):
    if isinstance(parts[0], dict):
        return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class MicroBatcher:
    def __init__(self, predict, max_batch_size: int = 32, max_delay_ms: float = 2.0, metrics=None, decode=None):
        self.predict_fn = predict
        self.decode = decode  # [bytes] -> ((m, H, W, C) uint8, {index: error}); needed for encoded rows
        self.shape = tuple(decode.shape) if getattr(decode, "shape", None) is not None else None  # else set by warm()
        self.max_batch_size = max(1, int(max_batch_size))
        self.buckets = bucket_sizes(self.max_batch_size)
        self.max_delay = max(0.0, float(max_delay_ms)) / 1000.0
        self.metrics = metrics
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._carry = None  # a request that did not fit the previous batch

    def warm(self, shape: tuple[int, ...]) -> None:
        """Call the model once at every bucket size (zeros), before serving."""
        self.shape = tuple(shape)
        for n in self.buckets:
            self.predict_fn(np.zeros((n, *shape), np.uint8))

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
        return self.predict_fn(self._padded(batch))[:count(batch)]

    def _decode_pending(self, parts: list):
        """`Pending` rows of every request in one `decode` call; errors by request index."""
        if self.decode is None:
            raise RuntimeError("pending rows need a batcher with decode=")
        rows, owner = [], []
        for k, part in enumerate(parts):
            rows += part.rows
            owner += [k] * len(part)
        inputs, bad = self.decode(rows)
        failed = {}
        for j, err in bad.items():
            failed.setdefault(owner[j], err)
        return inputs, failed

    def _assemble(self, parts: list) -> tuple[np.ndarray, dict[int, Exception]]:
        """The requests' images -> one (N, H, W, C) uint8 batch, every encoded row decoded in one call;
        and {request index: error} for requests whose file could not be decoded."""
        if all(isinstance(p, (np.ndarray, dict)) for p in parts):
            return _concat(parts), {}
        if all(isinstance(p, Pending) for p in parts):
            return self._decode_pending(parts)
        shape = self.shape or next(np.shape(r)[-3:] for p in parts for r in p if not isinstance(r, bytes))
        batch = np.empty((sum(len(p) for p in parts), *shape), np.uint8)
        blobs, where, owner = [], [], []
        i = 0
        for k, part in enumerate(parts):
            if isinstance(part, np.ndarray):
                batch[i:i + len(part)] = part
                i += len(part)
                continue
            for row in part:
                if isinstance(row, bytes):
                    blobs.append(row)
                    where.append(i)
                    owner.append(k)
                else:
                    batch[i] = row
                i += 1
        failed = {}
        if blobs:
            if self.decode is None:
                raise RuntimeError("encoded images need a batcher with decode=")
            pixels, bad = self.decode(blobs)
            batch[where] = pixels
            for j, err in bad.items():
                failed.setdefault(owner[j], err)
        return batch, failed

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
        """(n, H, W, C) uint8, or a list of n rows (encoded bytes or (H, W, C) uint8) -> (n, K) float32
        probabilities, batched with other callers."""
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
                    future.set_result(probs[i:i + count(images)])
            i += count(images)
