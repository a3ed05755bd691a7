"""Image regression on real photographs with a known target: how far is each patch turned?

    .venv/bin/python bench/image_regression.py [--n 1500] [--seeds 0 1 2] [--side 32] [--epochs auto]

Data: scikit-learn's two bundled photographs (`load_sample_images()`: china.jpg and flower.jpg, 427x640),
shipped in its wheel. Each example is a 64x64 patch at a random place, turned by a random known angle in
[-30, 30] degrees about its centre (OpenCV, bilinear), and its central `side`x`side` crop (no border
from the turn); the target is the angle. Patches whose centre lies in the left 70 % of a photo are
train/val, the right 30 % test, so no test pixel was seen in training.

Kiln: `kiln train data=CSV target=angle` with its defaults (model cnn, epochs auto; augmentation
stays off for a numeric target). The baselines are Kiln's own (metrics.json "baselines", same split,
same decoded pixels averaged down to 16 px): the training mean, ridge and HistGradientBoosting.
Reported: test RMSE in degrees per seed, and the mean over seeds.
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


def write_patches(root: Path, n: int, side: int, seed: int) -> Path:
    """ROOT/img/<i>.png and ROOT/data.csv `path,angle,split`."""
    import cv2
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # two (427, 640, 3) uint8 photographs
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    lines = ["path,angle,split"]
    n_test = n // 5
    for i in range(n):
        test = i < n_test
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        cut = int(w * 0.7)
        x0 = int(rng.integers(cut, w - 64)) if test else int(rng.integers(0, cut - 64))
        y0 = int(rng.integers(0, h - 64))
        patch = np.ascontiguousarray(photo[y0:y0 + 64, x0:x0 + 64])
        angle = float(rng.uniform(-30, 30))
        turn = cv2.getRotationMatrix2D((31.5, 31.5), angle, 1.0)
        turned = cv2.warpAffine(patch, turn, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        a = (64 - side) // 2
        cv2.imwrite(str(root / "img" / f"{i}.png"), cv2.cvtColor(turned[a:a + side, a:a + side], cv2.COLOR_RGB2BGR))
        lines.append(f"img/{i}.png,{angle:.4f},{'test' if test else 'train'}")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return root / "data.csv"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--epochs", default="auto")
    ap.add_argument("--model", default="cnn")
    args = ap.parse_args()

    import kiln

    rows, keep = [], tempfile.mkdtemp(prefix="kiln-bench-regress-")
    names = ("kiln", "mean", "ridge_pixels", "gradient_boosting_pixels")
    results = {k: [] for k in names}
    try:
        for seed in args.seeds:
            csv = write_patches(Path(keep) / f"data-{seed}", args.n, args.side, seed)
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
