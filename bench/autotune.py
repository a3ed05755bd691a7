"""tf.data's autotuner on vs off, under Keras `fit`: per-epoch wall time of the same cnn on Kiln's cached pipeline.

    .venv/bin/python bench/autotune.py [--rounds 3] [--epochs 10]

Kiln turns the autotuner off (kiln/tasks/image/data/pipeline.py, `pipeline_options`): Keras makes a new iterator every
epoch and every validation pass, and destroying one waits for the autotuner's thread. This measures what
that costs: the median and the mean epoch (epoch 2 on), and the slowest, with the autotuner switched back on
through `tf.data.Options` and with Kiln's setting, in alternating rounds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import DATA, table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()

    import keras
    import tensorflow as tf
    from synth import make_image_folder

    from kiln.tasks.image.data import sources
    from kiln.tasks.image.data.pipeline import make_dataset
    from kiln.tasks.image.models import create_model

    root = DATA / "png_2000_32"
    if not (root / ".complete").exists():
        make_image_folder(root, classes=4, per_class=500, size=32, seed=0)
        (root / ".complete").write_text("ok\n")
    frame = sources.discover(root).sample(frac=1, random_state=0)
    classes = sorted(frame["label"].unique())
    y = np.array([classes.index(c) for c in frame["label"]])
    paths = frame["path"].tolist()

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = [time.perf_counter()]

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter())

    def epochs(autotune: bool) -> np.ndarray:
        train = make_dataset(paths[:1600], y[:1600], 4, size=(32, 32), channels=3, batch_size=32, training=True, cache="memory")
        val = make_dataset(paths[1600:1800], y[1600:1800], 4, size=(32, 32), channels=3, batch_size=32, cache="memory")
        if autotune:
            options = tf.data.Options()
            options.autotune.enabled = True
            train, val = train.with_options(options), val.with_options(options)
        keras.utils.set_random_seed(0)
        model = create_model("cnn", (32, 32, 3), 4)
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        clock = Clock()
        model.fit(train, validation_data=val, epochs=args.epochs, verbose=0, callbacks=[clock])
        return np.diff(clock.times)[1:] * 1000

    seen = {"autotuner on (tf.data default)": [], "autotuner off (Kiln)": []}
    for i in range(args.rounds):
        for name in (list(seen) if i % 2 == 0 else list(seen)[::-1]):
            ms = epochs(name.startswith("autotuner on"))
            seen[name].append(ms)
            print(f"{name}: " + " ".join(f"{m:.0f}" for m in ms) + " ms", flush=True)
    rows = []
    for name, runs in seen.items():
        every = np.concatenate(runs)
        rows.append((name, f"{np.median(every):.0f}", f"{every.mean():.0f}", f"{every.max():.0f}", f"{(every > 1.5 * np.median(every)).sum()} of {len(every)}"))
    print(f"cnn on 1,600 cached 32x32 images, batch 32, 50 steps + validation an epoch; epochs 2-{args.epochs}, {args.rounds} rounds")
    print(table(rows, ("pipeline", "median epoch ms", "mean epoch ms", "slowest ms", "epochs > 1.5x median")))


if __name__ == "__main__":
    main()
