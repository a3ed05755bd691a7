"""Every export format and quantization against the Keras float32 model, in one run.

    .venv/bin/python bench/export.py [--run RUN_DIR] [--latency-runs 300] [--batch-runs 40]

Without --run, trains (once; reused after) a cnn on generated, deliberately ambiguous images (each
blended with another class's image, plus noise) so accuracy is below 100% and an int8 accuracy drop
could show: 8 classes x 400 images, 64x64 RGB, test split 25% (800 images: one image is 0.125 points). Each format is written by `kiln.export.export_run` (which
verifies agreement on the test split in the format's own runtime); then single-image latency
(median of --latency-runs calls) and batch-32 throughput (median of --batch-runs calls) are measured
here, alternating with the same Keras float32 predictor so machine noise hits both alike.

Target for TFLite int8 against Keras float32: >= 2x faster single-image, <= 0.3x size, <= 0.5 point
accuracy drop.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DATA = ROOT / "bench" / "_data" / "export"

COMBOS = [("keras", "none"), ("savedmodel", "none"), ("tflite", "none"), ("tflite", "float16"), ("tflite", "dynamic"),
          ("tflite", "int8"), ("onnx", "none"), ("onnx", "dynamic"), ("onnx", "int8")]


def noisy_folder(root: Path, classes: int = 8, per_class: int = 400, size: int = 64, noise: float = 40.0, seed: int = 0) -> Path:
    """Shapes from tests/synth.py, each blended with another class's image (weight 0.5-1 on its own) plus
    Gaussian noise: the near-0.5 blends are ambiguous, so accuracy stays below 100% and int8 can lose some."""
    import numpy as np
    from PIL import Image
    from synth import draw

    marker = root / ".complete"
    if marker.exists():
        return root
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            other = (c + rng.integers(1, classes)) % classes
            a = rng.uniform(0.5, 1.0)
            img = a * draw(c, size, rng) + (1 - a) * draw(other, size, rng) + rng.normal(0, noise, (size, size, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i:04d}.png")
    marker.write_text("ok\n")
    return root


def bench_run(epochs: int = 12) -> Path:
    """The benchmark's trained run (trained on first use, ~3-5 minutes on 2 cores)."""
    import kiln

    run_dir = DATA / "run"
    if (run_dir / "model.keras").exists():
        return run_dir
    data = noisy_folder(DATA / "images")
    print(f"training the benchmark run in {run_dir} ...", flush=True)
    kiln.train(data=str(data), run_dir=str(run_dir), epochs=epochs, seed=0, image_size=64, val_split=0.1, test_split=0.25,
               model={"name": "cnn", "filters": [32, 64, 128], "units": [128]},
               train={"verbose": 0, "tensorboard": False, "patience": 0})
    return run_dir


def latency_pair(reference, candidate, images, runs: int) -> tuple[float, float]:
    """Median single-image ms of both predictors, measured in alternating blocks of 10 calls."""
    import numpy as np

    times = {0: [], 1: []}
    for p in (reference, candidate):
        for i in range(5):
            p(images[i:i + 1])
    for block in range(runs // 10):
        for which, p in ((0, reference), (1, candidate)) if block % 2 == 0 else ((1, candidate), (0, reference)):
            for i in range(10):
                x = images[(block * 10 + i) % len(images)][None]
                t = time.perf_counter()
                p(x)
                times[which].append(time.perf_counter() - t)
    return float(np.median(times[0]) * 1000), float(np.median(times[1]) * 1000)


def throughput_pair(reference, candidate, images, runs: int, batch_size: int = 32) -> tuple[float, float]:
    """Batch-32 images/s of both predictors: median call time over alternating calls."""
    import numpy as np

    batch = np.resize(images, (batch_size, *images.shape[1:])).astype(np.uint8)
    times = {0: [], 1: []}
    for p in (reference, candidate):
        p(batch)
    for r in range(runs):
        for which, p in ((0, reference), (1, candidate)) if r % 2 == 0 else ((1, candidate), (0, reference)):
            t = time.perf_counter()
            p(batch)
            times[which].append(time.perf_counter() - t)
    return batch_size / float(np.median(times[0])), batch_size / float(np.median(times[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an existing run folder (default: train the benchmark run)")
    parser.add_argument("--latency-runs", type=int, default=300)
    parser.add_argument("--batch-runs", type=int, default=40)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    from kiln.export.export import export_run, format_module
    from kiln.tasks.image.export import parity_images
    from kiln.export.keras import KerasPredictor
    from kiln.run import load_run

    run = load_run(args.run or bench_run())
    signature = run.task.signature(run)
    reference = KerasPredictor(run.model, signature)
    _, images, _ = parity_images(run, 200)  # timing inputs: decoded test images
    rows = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-export-") as tmp:
        for fmt, q in COMBOS:
            t = time.perf_counter()
            m = export_run(run.path, fmt, q, out=str(Path(tmp) / f"{fmt}-{q}"), force=True,
                           timing={"latency_runs": 3, "batch_runs": 1, "batch_size": 8})
            seconds = time.perf_counter() - t
            candidate = format_module(fmt).load(m["out"], signature)
            keras_ms, ms = latency_pair(reference, candidate, images, args.latency_runs)
            keras_tp, tp = throughput_pair(reference, candidate, images, args.batch_runs)
            rows.append({"format": fmt, "quantize": q, "size_bytes": m["size_bytes"], "keras_size_bytes": m["keras_size_bytes"],
                         "latency_ms": ms, "keras_latency_ms": keras_ms, "throughput": tp, "keras_throughput": keras_tp,
                         "accuracy": m["accuracy"], "keras_accuracy": m["keras_accuracy"], "agreement": m["agreement"],
                         "max_abs_diff": m["max_abs_diff"], "n": m["parity_n"], "export_seconds": seconds})
            print(f"  {fmt:<10} {q:<8} done in {seconds:.1f} s", flush=True)

    n = rows[0]["n"]
    print(f"\nrun {run.path} ({run.meta.get('model')}, input {'x'.join(map(str, run.spec.shape))}, {len(run.classes)} classes); "
          f"test split n={n}; Keras float32: accuracy {rows[0]['keras_accuracy']:.4f}, size {rows[0]['keras_size_bytes'] / 1024:.0f} KiB\n")
    header = ("format", "quantize", "size KiB", "size ratio", "1-image ms", "keras ms", "speedup", "batch-32 img/s",
              "keras img/s", "accuracy", "acc. drop (pts)", "agreement", "max prob diff")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join([
            r["format"], r["quantize"], f"{r['size_bytes'] / 1024:.0f}", f"{r['size_bytes'] / r['keras_size_bytes']:.2f}",
            f"{r['latency_ms']:.3f}", f"{r['keras_latency_ms']:.3f}", f"{r['keras_latency_ms'] / r['latency_ms']:.1f}x",
            f"{r['throughput']:.0f}", f"{r['keras_throughput']:.0f}", f"{r['accuracy']:.4f}",
            f"{100 * (r['keras_accuracy'] - r['accuracy']):+.2f}", f"{r['agreement']:.2%}", f"{r['max_abs_diff']:.3f}"]) + " |")
    print("\n".join(lines))
    int8 = next(r for r in rows if r["format"] == "tflite" and r["quantize"] == "int8")
    speedup = int8["keras_latency_ms"] / int8["latency_ms"]
    size_ratio = int8["size_bytes"] / int8["keras_size_bytes"]
    drop = 100 * (int8["keras_accuracy"] - int8["accuracy"])
    print("\nTFLite int8 vs Keras float32 targets:")
    print(f"  single-image speedup {speedup:.1f}x (target >= 2x): {'met' if speedup >= 2 else 'NOT met'}")
    print(f"  size ratio {size_ratio:.2f} (target <= 0.3): {'met' if size_ratio <= 0.3 else 'NOT met'}")
    print(f"  accuracy drop {drop:+.2f} points (target <= 0.5): {'met' if drop <= 0.5 else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
