"""The image task's `kiln demo` plan (kiln/demo.py walks it): 1,797 real handwritten digits that ship inside scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np



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


# The tour's settings: the digits are 8x8, so 16 px keeps every stroke (the default rounds up to 32 px, 4x the
# work an epoch) and 12 epochs reach ~0.98-0.99 held out (the default budget, ~30,000 images seen plus the
# train+val refit, trains 42 epochs for about the same figure).
SETTINGS = {"image.image_size": 16, "train.epochs": 12, "train.export_on_finish": "onnx"}
WHY = "a short tour: 8x8 digits need no more than 16 px, 12 epochs reach ~0.99, and the ONNX export lets predict skip TensorFlow"


def demo_plan(dest: Path):
    from kiln.demo import DemoPlan

    data = write_digits(Path(dest))
    samples = [str(data / d / sorted(p.name for p in (data / d).iterdir())[0]) for d in ("0", "3", "7")]
    return DemoPlan(data=data, settings=dict(SETTINGS), why=WHY, metric="accuracy", higher=True, predict=samples,
                    export=("tflite", "int8"), audit={"min_side": 8}, baselines=pixel_baselines,  # the digits are 8x8 by design
                    source="scikit-learn's 1,797 handwritten digits (8x8, 10 classes)")


def pixel_baselines(run) -> dict:
    """Test accuracy of the largest class and of a logistic regression on the pixels the model sees, fitted on
    train + val (more than the model trained on): the baselines a CNN on images must beat."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.pipeline import make_pipeline

    from kiln.tasks.image.export import decode

    rows = run.splits
    index = {c: i for i, c in enumerate(run.classes)}
    fit, test = rows[rows["split"] != "test"], rows[rows["split"] == "test"]
    x_fit = decode(run, fit["path"].tolist()).reshape(len(fit), -1).astype(np.float32)
    x_test = decode(run, test["path"].tolist()).reshape(len(test), -1).astype(np.float32)
    y_fit, y_test = fit["label"].map(index).to_numpy(), test["label"].map(index).to_numpy()
    largest = np.bincount(y_fit, minlength=len(index)).argmax()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_fit, y_fit)
    return {"largest class": float(np.mean(y_test == largest)),
            "logistic regression on pixels": float(np.mean(model.predict(x_test) == y_test))}
