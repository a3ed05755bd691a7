"""Peak memory of `kiln convert` and of training from shards at 10k and 100k images: it must not grow with N.

    .venv/bin/python bench/memory.py [--sizes 10000 100000] [--root /tmp/kiln-bench]

Generates N 16x16 PNGs (10 classes) once under ROOT/png16-N (100k take a few minutes; reused after),
then runs each step in a fresh process and reads its peak RSS (`resource.getrusage`, ru_maxrss):
- convert: `kiln.convert(folder, shards)` (decode-check every file, split, write shards);
- train: `kiln.train(data=shards, epochs=1, cache=none, model=linear)`: one epoch of streamed,
  interleaved reads plus evaluation of val and test from the shards;
- train cache=memory: the same with decoded images cached in memory, the control that shows what
  holding the pixels costs (N x 32 x 32 x 3 bytes at the auto image size).
`baseline` is the RSS of a process that has only imported Kiln and TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def generate(root: Path, n: int, classes: int = 10) -> Path:
    import numpy as np
    from PIL import Image

    marker = root / ".complete"
    if marker.exists():
        return root
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 255, (classes, 16, 16, 3), dtype=np.uint8)
    for i in range(n):
        c = i % classes
        noise = rng.integers(0, 40, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(base[c] // 2 + noise).save(root / f"c{c}" / f"{i:06d}.png")
    marker.write_text("ok\n")
    return root


def child(step: str, folder: str, shards: str, run_dir: str) -> None:
    import kiln
    import tensorflow  # noqa: F401  (the baseline includes it: convert and train both load it)

    baseline = peak_mb()
    started = time.time()
    if step == "convert":
        kiln.convert(folder, shards, progress=False)
    elif step.startswith("train"):
        cache = "memory" if step == "train-cached" else "none"
        kiln.train(data=shards, run_dir=run_dir, epochs=1, model="linear", cache=cache, batch_size=256,
                   train={"verbose": 0, "tensorboard": False, "patience": 0}, evaluate={"report": False})
    print(json.dumps({"step": step, "baseline_mb": round(baseline), "peak_mb": round(peak_mb()),
                      "seconds": round(time.time() - started, 1)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--root", default="/tmp/kiln-bench")
    ap.add_argument("--child", nargs=4, metavar=("STEP", "FOLDER", "SHARDS", "RUN"))
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    import shutil

    results = []
    for n in args.sizes:
        root = Path(args.root)
        t = time.time()
        folder = generate(root / f"png16-{n}", n)
        print(f"{n:,} images ready in {time.time() - t:.0f} s", file=sys.stderr, flush=True)
        shards, run_dir = root / f"shards-{n}", root / f"run-{n}"
        for path in (shards, run_dir):
            if path.exists():
                shutil.rmtree(path)
        for step in ("convert", "train", "train-cached"):
            if step == "train-cached" and run_dir.exists():
                shutil.rmtree(run_dir)
            out = subprocess.run([sys.executable, __file__, "--child", step, str(folder), str(shards), str(run_dir)],
                                 capture_output=True, text=True)
            if out.returncode:
                sys.exit(out.stderr[-3000:])
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results.append({"images": n, **row})
            print(json.dumps(results[-1]), flush=True)
    print("\n| images | step | baseline RSS | peak RSS | peak - baseline | seconds |\n|---|---|---|---|---|---|")
    for r in results:
        step = {"train": "train, cache=none", "train-cached": "train, cache=memory (control)"}.get(r["step"], r["step"])
        print(f"| {r['images']:,} | {step} | {r['baseline_mb']} MB | {r['peak_mb']} MB | {r['peak_mb'] - r['baseline_mb']} MB | {r['seconds']} |")


if __name__ == "__main__":
    main()
