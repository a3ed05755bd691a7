"""Backbone speed on this CPU: parameters, training and inference images/s at each model's own input size.

    .venv/bin/python bench/backbones.py [--models 'efficientnet_b0,resnet*'] [--batch 4] [--steps 3]
                                        [--budget 600] [--write]

Every registered backbone and ViT (or those matching --models, comma-separated globs), built with
weights=none (the same graph as weights=imagenet; no download needed) and 10 classes, fed random
uint8 images. Per model: one warm-up call (traces the graph), then --steps timed calls of
`predict_on_batch` (inference) and `train_on_batch` (Adam, one step each). All in one process, one
model at a time (`keras.backend.clear_session()` between).

Order: each family's smallest member first (always measured), then the rest by input side; once
--budget seconds have passed no further model starts, and the ones left are listed as not measured.
--write puts the table into BENCHMARKS.md under "## Backbones" (replacing that section only).
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import re
import time

from common import ROOT, table

SECTION = "## Backbones: images/s on this CPU (`bench/backbones.py`)"


def ordered(names: list[str]) -> tuple[list[str], list[str]]:
    """(each family's smallest member, the rest by input side)."""
    from kiln.tasks.image.models import get_entry
    from kiln.tasks.image.models.backbones import BACKBONES
    from kiln.tasks.image.models.vit import SIZES

    smallest_first = list(BACKBONES) + list(SIZES)  # each family is listed smallest first
    names = sorted(names, key=smallest_first.index)
    rank: dict[str, int] = {}  # position within its family: 0 for the smallest
    families: dict[str, int] = {}
    for name in names:
        fam = get_entry(name).family
        rank[name] = families.get(fam, 0)
        families[fam] = rank[name] + 1
    first = [n for n in names if rank[n] == 0]
    rest = sorted((n for n in names if rank[n]), key=lambda n: (get_entry(n).default_size, rank[n], names.index(n)))
    return first, rest


def measure(name: str, batch: int, steps: int) -> dict:
    import keras
    import numpy as np

    from kiln.tasks.image.models import create_model, get_entry

    side = get_entry(name).default_size
    t0 = time.perf_counter()
    model = create_model(name, (side, side, 3), 10, weights="none")
    model.compile(keras.optimizers.Adam(1e-4), "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, side, side, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 10, batch), 10)
    model.predict_on_batch(x)  # warm-up: traces the inference graph
    build_s = time.perf_counter() - t0
    t = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(x)
    infer = batch * steps / (time.perf_counter() - t)
    t = time.perf_counter()
    model.train_on_batch(x, y)  # warm-up: traces the training step
    build_s += time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    train = batch * steps / (time.perf_counter() - t)
    row = {"model": name, "side": side, "params": model.count_params(), "train": train, "infer": infer, "setup_s": build_s}
    del model
    keras.backend.clear_session()
    gc.collect()
    return row


def write_section(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    block = f"{SECTION}\n\n{text.strip()}\n"
    new = pattern.sub(lambda _: block, current) if pattern.search(current) else current.rstrip("\n") + "\n\n" + block
    from kiln.io import write_text

    write_text(path, new)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="*", help="comma-separated globs over model names")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--budget", type=float, default=600.0, help="seconds after which no new model starts")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = ap.parse_args()

    from kiln.tasks.image.models import get_entry, list_models

    names = [n for n in list_models() if get_entry(n).family != "simple"
             and any(fnmatch.fnmatch(n, g.strip()) for g in args.models.split(","))]
    first, rest = ordered(names)
    started = time.perf_counter()
    rows, skipped = [], []
    for name in first + rest:
        if name not in first and time.perf_counter() - started > args.budget:
            skipped.append(name)
            continue
        r = measure(name, args.batch, args.steps)
        rows.append(r)
        print(f"{r['model']:<20} {r['side']:>4}px {r['params']:>12,} params  train {r['train']:7.2f} img/s  "
              f"infer {r['infer']:7.2f} img/s  (build+trace {r['setup_s']:.0f} s)", flush=True)
    total = time.perf_counter() - started
    body = table([(r["model"], r["side"], f"{r['params']:,}", f"{r['train']:.2f}", f"{r['infer']:.2f}",
                   f"{r['infer'] / r['train']:.1f}", f"{r['setup_s']:.0f}") for r in rows],
                 ("model", "side", "params (10 classes)", "train img/s", "inference img/s", "infer/train", "build+trace s"))
    note = (f"\n\nNot measured (the {args.budget:.0f} s budget had run out): {', '.join(skipped)}." if skipped else "")
    print(body + note)
    print(f"total {total:.0f} s")
    if args.write:
        write_section(
            "```bash\n"
            f".venv/bin/python bench/backbones.py --batch {args.batch} --steps {args.steps} --budget {args.budget:.0f} --write"
            f"   # this run: {total / 60:.0f} minutes\n```\n\n"
            f"Each model at its own input size, weights=none, batch {args.batch}, {args.steps} timed steps after one "
            "warm-up step, 2 shared CPU cores (other jobs were running, so figures are noisy; compare rows of "
            "this one run). Each family's smallest member runs first and is always measured.\n\n"
            + body + note +
            "\n\nGPU: no GPU machine was available to this task, so the EfficientNetB0 224x224 float32 vs "
            "mixed-precision figure was not measured.\n")


if __name__ == "__main__":
    main()
