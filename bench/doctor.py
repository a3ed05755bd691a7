"""The doctor's recording overhead: `kiln train` with the recorder on (the default) vs `doctor=false`, same data,
same model, same seed, one after the other in each round.

    .venv/bin/python bench/doctor.py [--rows 20000] [--epochs 6] [--rounds 3]

A generated table (kiln.tasks.table.synth) and the `dnn` model: small, fast steps, so fixed per-step costs show
the most. Steady-state speed is steps/s over epochs 2 onwards (history.csv `epoch_seconds`: wall time from one
epoch's end to the next, validation and every callback included); the ratio is of the medians over rounds. The
order alternates (on, off / off, on) from round to round, so a machine whose load drifts favours neither. Beside the
wall time, the process's CPU seconds over the same epochs (a timing callback the bench adds to both arms): on a
machine shared with other jobs, wall time swings with their load, CPU time much less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class CpuClock:
    """Process CPU seconds of epochs 2 onwards (a keras callback, built lazily so the module imports no TensorFlow)."""

    seconds = 0.0

    @classmethod
    def callback(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = sum(os.times()[:2])

            def on_epoch_end(self, epoch, logs=None):
                if epoch >= 1:
                    cls.seconds += sum(os.times()[:2]) - self.start

        return Clock()


def _with_clock():
    import kiln.train.callbacks as callbacks
    import kiln.train.phases  # noqa: F401 - it imports build_callbacks inside fit_phases, from kiln.train.callbacks

    original = callbacks.build_callbacks
    callbacks.build_callbacks = lambda *a, **k: original(*a, **k) + [CpuClock.callback()]


def fit(data: Path, run_dir: Path, epochs: int, doctor: bool) -> tuple[float, float, float]:
    from kiln.config import load_config
    from kiln.train.trainer import train

    cfg = load_config(None, [f"data={data}", "target=label", f"run_dir={run_dir}", f"epochs={epochs}", "patience=0",
                             "verbose=0", "model=dnn", "evaluate.report=false", "importance=false", "baselines=false",
                             f"doctor={str(doctor).lower()}"])
    CpuClock.seconds = 0.0
    train(cfg)
    h = pd.read_csv(run_dir / "history.csv")
    steady = float(h["epoch_seconds"].iloc[1:].sum())
    return steady, float(h["epoch_seconds"].sum()), CpuClock.seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from kiln.tasks.table.synth import make_table

    root = Path(tempfile.mkdtemp(prefix="kiln-doctor-bench-"))
    data = root / "t.csv"
    make_table(args.rows, seed=0).to_csv(data, index=False)
    _with_clock()
    fit(data, root / "warm", 1, True)  # TensorFlow start-up and first traces out of the timings
    on, off, on_all, off_all, on_cpu, off_cpu = [], [], [], [], [], []
    for r in range(args.rounds):
        arms = ((True, on, on_all, on_cpu), (False, off, off_all, off_cpu))
        for doctor, steady, total, cpu in (arms if r % 2 == 0 else arms[::-1]):
            s, t, c = fit(data, root / f"r{r}-{doctor}", args.epochs, doctor)
            steady.append(s)
            total.append(t)
            cpu.append(c)
            print(f"round {r + 1} doctor={doctor}: epochs 2-{args.epochs} {s:.2f} s ({c:.2f} CPU s), all epochs {t:.2f} s",
                  flush=True)
    ratio = statistics.median(off) / statistics.median(on)
    ratio_all = statistics.median(off_all) / statistics.median(on_all)
    ratio_cpu = statistics.median(off_cpu) / statistics.median(on_cpu)
    paired = statistics.median(b / a for a, b in zip(on, off))
    print(f"steps/s with the recorder / without, epochs 2+: {ratio:.3f} (overhead {1 - ratio:.1%}); "
          f"all epochs incl. the first: {ratio_all:.3f} (overhead {1 - ratio_all:.1%}); "
          f"median of the rounds' own ratios, epochs 2+: {paired:.3f}; "
          f"CPU seconds, epochs 2+: {ratio_cpu:.3f} (overhead {1 - ratio_cpu:.1%})")

if __name__ == "__main__":
    main()
