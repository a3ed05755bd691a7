"""`kiln demo`: the whole path on real data that ships inside scikit-learn (1,797 handwritten digits)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("kiln.demo")


def write_digits(dest: Path) -> Path:
    """scikit-learn's 8x8 digits (17 grey levels) as DEST/<digit>/<index>.png; kept if already complete."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    marker = dest / ".complete"
    if marker.is_file():
        return dest
    for i, (image, target) in enumerate(zip(digits.images, digits.target)):
        folder = dest / str(target)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.round(image * (255.0 / 16.0)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i:04d}.png")
    marker.write_text(f"{len(digits.images)}\n")
    return dest


def write_shapes(dest: Path, classes: int = 3, per_class: int = 20, size: int = 16, seed: int = 0) -> Path:
    """DEST/class_<a..>/<i>.png: class c is a bright bar across (0), a bar down (1) or a square (2) over noise,
    in its own colour; learnable in a couple of epochs. The image task's generated example."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = [(230, 40, 40), (40, 200, 60), (50, 80, 230), (230, 200, 40)]
    lo, hi = size // 4, size - size // 4
    for c in range(classes):
        folder = Path(dest) / f"class_{chr(97 + c)}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            shape = c % 3
            if shape == 0:
                img[size // 2 - 2:size // 2 + 2, 1:-1] = colours[c % 4]
            elif shape == 1:
                img[1:-1, size // 2 - 2:size // 2 + 2] = colours[c % 4]
            else:
                img[lo:hi, lo:hi] = colours[c % 4]
            Image.fromarray(img).save(folder / f"{i:03d}.png")
    return Path(dest)


def demo(overrides: dict | None = None):
    """Write the digits, audit them, train, evaluate, predict, export to TFLite int8 with a parity check,
    and write the report; print where everything is."""
    from kiln.config import load_config
    from kiln.tasks.image.data.audit import audit
    from kiln.evaluate.report import write_report
    from kiln.export.export import export_run
    from kiln.run import new_run_dir
    from kiln.train.trainer import train

    overrides = dict(overrides or {})
    base = load_config(overrides={k: v for k, v in overrides.items()})
    run_dir = new_run_dir(base.run_dir, base.runs_root, base.name or "demo")
    data = write_digits(run_dir / "data")
    found = audit(data, out=run_dir, options={"min_side": 8}, progress=False)  # the digits are 8x8 by design
    kinds = ", ".join(f"{n} {k}" for k, n in found["kinds"].items()) or "none"
    print(f"kiln demo: audited {found['files']} files; findings by kind: {kinds} (details in {run_dir / 'audit.html'})")
    overrides.update({"data": str(data), "run_dir": str(run_dir)})
    cfg = load_config(overrides=overrides)
    run = train(cfg)
    test = run.evaluate(split="test", out=str(run_dir / "evaluate_test.json"))
    samples = [str(data / d / sorted(p.name for p in (data / d).iterdir())[0]) for d in ("0", "3", "7")]
    predictions = run.predict(samples, top_k=3, out=str(run_dir / "predictions.csv"))
    for p in predictions:
        print(json.dumps(p))
    exported = export_run(run_dir, "tflite", "int8", out=str(run_dir / "exports" / "tflite-int8"))
    report = write_report(run)  # again, now with the export's parity figures
    print(f"\nkiln demo: test accuracy {test['accuracy']:.4f}, macro F1 {test['macro_f1']:.4f} on {test['n']} images")
    print(f"kiln demo: TFLite int8 agrees with the Keras model on {exported['agreement']:.1%} of test images, "
          f"accuracy {exported['score']:.4f}, {exported['size_bytes'] / 1024:.0f} KiB")
    print(f"  run folder   {run_dir}")
    for name in ("config.yaml", "splits.csv", "model.keras", "history.csv", "metrics.json", "tensorboard", "plots",
                 "evaluate_test.json", "predictions.csv", "audit.html"):
        print(f"  {name:<18} {run_dir / name}")
    print(f"  {'export':<18} {run_dir / 'exports' / 'tflite-int8'}")
    print(f"  {'report':<18} {report}")
    return run
