"""Image regression on real scans with a known target: how far is each handwritten digit turned?

    .venv/bin/python bench/image_regression.py [--seeds 0 1 2] [--side 24] [--epochs 60]

Data: scikit-learn's bundled handwritten digits (`load_digits()`: 1,797 scans, 8x8, 17 grey levels), shipped
in its wheel. Each digit is upscaled to `side` px (bicubic) and turned by a random known angle in [-45, 45]
degrees about its centre (OpenCV, bilinear); the target is the angle. A seeded 80/20 train/test split (the
CSV's split column); Kiln carves val from train.

Kiln: `kiln train data=CSV target=angle epochs=E` (model cnn; augmentation stays off for a numeric
target; with epochs=auto Kiln trains ~30,000 images' worth, 24 epochs here, then refits on train+val).
The baselines are Kiln's own (metrics.json "baselines", same split, same decoded pixels averaged down to
16 px): the training mean, ridge and HistGradientBoosting. Reported: test RMSE in degrees per seed and
the mean over seeds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from common import table


def write_digits(root: Path, side: int, seed: int, max_angle: float = 45.0) -> Path:
    """ROOT/img/<i>.png (each of the 1,797 digits upscaled to `side` px and turned by a random known angle) and
    ROOT/data.csv `path,angle,split` (a seeded 80/20 train/test split; Kiln carves val from train)."""
    import cv2
    from sklearn.datasets import load_digits

    digits = load_digits().images  # (1797, 8, 8), 17 grey levels 0-16
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    test = rng.permutation(len(digits))[: len(digits) // 5]
    is_test = np.zeros(len(digits), bool)
    is_test[test] = True
    lines = ["path,angle,split"]
    c = (side - 1) / 2
    for i, d in enumerate(digits):
        big = cv2.resize((d * 255 / 16).astype(np.uint8), (side, side), interpolation=cv2.INTER_CUBIC)
        angle = float(rng.uniform(-max_angle, max_angle))
        turned = cv2.warpAffine(big, cv2.getRotationMatrix2D((c, c), angle, 1.0), (side, side), flags=cv2.INTER_LINEAR)
        cv2.imwrite(str(root / "img" / f"{i}.png"), turned)
        lines.append(f"img/{i}.png,{angle:.4f},{'test' if is_test[i] else 'train'}")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root / "data.csv"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--side", type=int, default=24)
    ap.add_argument("--epochs", default="60")
    ap.add_argument("--model", default="cnn")
    args = ap.parse_args()

    import kiln

    rows, keep = [], tempfile.mkdtemp(prefix="kiln-bench-regress-")
    names = ("kiln", "mean", "ridge_pixels", "gradient_boosting_pixels")
    results = {k: [] for k in names}
    try:
        for seed in args.seeds:
            csv = write_digits(Path(keep) / f"data-{seed}", args.side, seed)
            started = time.time()
            epochs = args.epochs if args.epochs == "auto" else int(args.epochs)
            run = kiln.train(data=str(csv), target="angle", model=args.model, epochs=epochs, image_size=args.side, seed=seed,
                             run_dir=str(Path(keep) / f"run-{seed}"), train={"verbose": 0, "tensorboard": False},
                             evaluate={"report": False})
            seconds = time.time() - started
            m = json.loads((run.path / "metrics.json").read_text())
            test = {"kiln": m["test"], **m["baselines"]["test"]}
            for k in names:
                results[k].append(test[k]["rmse"])
            rows.append([seed, m["test"]["n"], *(f"{test[k]['rmse']:.2f}" for k in names), f"{m['test']['r2']:.3f}", f"{seconds:.0f}"])
        rows.append(["mean", "", *(f"{np.mean(results[k]):.2f}" for k in names), "", ""])
        print(table(rows, ("seed", "test n", "Kiln RMSE", "mean", "ridge pixels", "GBM pixels", "Kiln R2", "train s")))
    finally:
        shutil.rmtree(keep, ignore_errors=True)


if __name__ == "__main__":
    main()
