"""Training speed by precision / XLA, and the cost of the per-epoch resume checkpoint, on this machine.

    .venv/bin/python bench/train_scale.py [--size 64] [--batch 64] [--steps 30]

Trains Kiln's `cnn` (raw uint8 pixels in, softmax out) on in-memory random images, so only the train
step is timed (no decoding). Prints images/s for float32, mixed_bfloat16, mixed_float16 and
float32 + jit_compile, each as a ratio to float32 measured in the same run, then the time to write
RUN/state/checkpoint.npz (weights + Adam variables) for that model and for one with a 9M-parameter head.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kiln.tasks.image.models import create_model  # noqa: E402
from kiln.train.distribute import precision_policy  # noqa: E402
from kiln.train.resume import write_state  # noqa: E402


def build(size: int, filters, precision: str, jit: bool, units=(128,)):
    with precision_policy(precision):
        model = create_model("cnn", (size, size, 3), 10, filters=filters, units=list(units))
        model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", jit_compile=jit)
    return model


def images_per_second(model, data, steps: int, batch: int) -> float:
    it = iter(data)
    for _ in range(3):  # trace / compile
        model.train_on_batch(*next(it))
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*next(it))
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch * 4, args.size, args.size, 3), dtype=np.uint8)
    y = keras.utils.to_categorical(rng.integers(0, 10, len(x)), 10)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch).repeat().prefetch(2)
    filters = [32, 64, 128]

    print(f"cnn {filters}, {args.size}x{args.size}x3, batch {args.batch}, {args.steps} timed steps, "
          f"{os.cpu_count()} CPU cores, TF {tf.__version__}, Keras {keras.__version__}")
    print(f"{'setting':<26}{'images/s':>10}{'vs float32':>12}")
    base = None
    for name, precision, jit in (("float32", "float32", False), ("mixed_bfloat16", "mixed_bfloat16", False),
                                 ("mixed_float16", "mixed_float16", False), ("float32 + jit_compile", "float32", True)):
        rate = images_per_second(build(args.size, filters, precision, jit), data, args.steps, args.batch)
        base = base or rate
        print(f"{name:<26}{rate:>10.0f}{rate / base:>11.2f}x")

    print(f"\n{'resume checkpoint':<26}{'params':>12}{'MB':>8}{'write s':>9}{'epoch s*':>10}")
    for label, units in (("cnn, units [128]", [128]), ("cnn, units [4096, 2048]", [4096, 2048])):
        model = build(args.size, filters, "float32", False, units)
        model.train_on_batch(x[: args.batch], y[: args.batch])  # builds the optimizer variables
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_state(Path(tmp), model, phase=1, epoch=1, phase_start=0, optimizer=True)
            seconds = time.perf_counter() - start
            mb = (Path(tmp) / "state" / "checkpoint.npz").stat().st_size / 1e6
        step = 1.0 / images_per_second(model, data, 5, args.batch) * args.batch
        print(f"{label:<26}{model.count_params():>12,}{mb:>8.1f}{seconds:>9.3f}{step * 1000 / args.batch:>10.1f}")
    print("* one epoch of 1,000 images at this speed, for scale")


if __name__ == "__main__":
    main()
