"""TFRecord shards vs the image folder, and the audit's scaling over cores.

    .venv/bin/python bench/records.py [--n 2000] [--size 224]

Same generated 320x240 JPEGs (bench/_data, shared with bench/pipeline.py). Prints, from one run:
- images/s of one training epoch (shuffled, parallel decode + resize, batch 32, no cache) read from
  the folder (`make_dataset`) and from shards (`ShardSource.dataset`: interleaved parallel reads), and
  their ratio; after a warm-up pass, timed in alternating rounds, best of each kept;
- `kiln convert` images/s;
- `kiln audit` files/s with a worker process per core vs one process (alternating rounds, best kept),
  their ratio, and the CPU seconds each used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

from common import DATA, jpeg_folder, table, timed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=4, help="alternating timed rounds; the best of each is kept")
    args = ap.parse_args()
    root = jpeg_folder(args.n)
    size = (args.size, args.size)

    import kiln
    from kiln.tasks.image.data.audit import AuditOptions, audit

    # The audit first, as `kiln audit` runs it: TensorFlow not loaded yet, so workers are forked.
    cores = os.cpu_count() or 1
    audit(root, options=AuditOptions(workers=1), progress=False, write=False)  # warm the page cache

    def audit_run(workers):  # (wall seconds, CPU seconds of this process and its workers)
        before, t = os.times(), time.perf_counter()
        audit(root, options=AuditOptions(workers=workers), progress=False, write=False)
        after = os.times()
        cpu = sum(getattr(after, k) - getattr(before, k) for k in ("user", "system", "children_user", "children_system"))
        return time.perf_counter() - t, cpu

    runs = [(audit_run(1), audit_run(cores)) for _ in range(args.rounds)]
    one_s, one_cpu = min(r[0] for r in runs)
    all_s, all_cpu = min(r[1] for r in runs)

    from kiln.tasks.image.config import ImageData
    from kiln.tasks.image.data.pipeline import make_dataset
    from kiln.tasks.image.data.prepare import prepare
    from kiln.tasks.image.data.records import ShardSource

    out = DATA / f"shards_{root.name}"
    if out.exists():
        shutil.rmtree(out)
    convert_s = timed(lambda: kiln.convert(root, out, shard_images=250, val_split=0, test_split=0))
    src = ShardSource(out)
    rows = prepare(ImageData(path=str(root), val_split=0.0, test_split=0.0), 42).split("train")
    n = len(rows)
    kw = dict(size=size, channels=3, resize="stretch", batch_size=32, training=True, seed=0, cache="none")

    def epoch(ds):
        for _ in ds:
            pass

    folder_ds = make_dataset(rows["path"].tolist(), rows["y"].to_numpy(), 4, use_pil=rows["use_pil"].to_numpy(), **kw)
    shard_ds = src.dataset("train", 4, **kw)
    epoch(folder_ds), epoch(shard_ds)  # warm the page cache and tf.data's autotuner
    folder_s = shard_s = float("inf")
    for _ in range(args.rounds):  # alternate, so load from other work on the machine hits both alike
        folder_s = min(folder_s, timed(lambda: epoch(folder_ds)))
        shard_s = min(shard_s, timed(lambda: epoch(shard_ds)))

    print(f"{n} JPEGs 320x240 -> {size[0]}x{size[1]}, batch 32, {cores} cores, {len(src.files('train'))} shards\n")
    print(table([
        ("read: image folder (make_dataset)", f"{n / folder_s:,.0f} img/s", "1.00x"),
        ("read: TFRecord shards (interleaved)", f"{n / shard_s:,.0f} img/s", f"{folder_s / shard_s:.2f}x"),
        ("kiln convert", f"{n / convert_s:,.0f} img/s", ""),
        ("kiln audit, 1 process", f"{n / one_s:,.0f} files/s ({one_cpu:.1f} CPU s)", "1.00x"),
        (f"kiln audit, {cores} processes", f"{n / all_s:,.0f} files/s ({all_cpu:.1f} CPU s)", f"{one_s / all_s:.2f}x"),
    ], ("what", "throughput", "ratio")))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {cores} cores (other work on the machine slows the wall clock)")


if __name__ == "__main__":
    main()
