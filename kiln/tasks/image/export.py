"""What an image export is: its signature (uint8 pixels in, class probabilities out) and the images it is
checked and calibrated on, decoded as training decoded them."""

from __future__ import annotations

import logging
import os

import numpy as np

from kiln.errors import DataError, received

log = logging.getLogger("kiln.export")


def signature(run):
    """`image: uint8 (N, H, W, C)` raw pixels -> `probabilities: float32 (N, K)`, or `value: float32 (N, 1)` for a
    numeric target; rescaling is inside the model."""
    from kiln.tasks.base import Signature, TensorSpec

    spec = run.spec
    out = TensorSpec("probabilities", "float32", (len(run.classes),)) if run.classes else TensorSpec("value", "float32", (1,))

    def call(model, inputs: dict) -> dict:
        import keras

        return {out.name: model(keras.ops.cast(inputs["image"], model.inputs[0].dtype), training=False)}

    meta = {"image": spec.to_dict(), **({"target": run.meta["target"]} if not run.classes else {})}
    return Signature(inputs=(TensorSpec("image", "uint8", tuple(spec.shape)),), outputs=(out,),
                     call=call, labels=list(run.classes) if run.classes else None, meta=meta)


def _existing_paths(rows) -> tuple[list[str], list[str], np.ndarray]:
    """Paths, labels and use_pil (decode with Pillow, as training did) of the rows whose file still exists."""
    pil = rows["use_pil"].astype(str).str.lower().eq("true") if "use_pil" in rows else [False] * len(rows)
    paths, labels, use_pil = [], [], []
    for p, label, u in zip(rows["path"], rows["label"], pil):
        if os.path.isfile(p):
            paths.append(p)
            labels.append(label)
            use_pil.append(bool(u))
    missing = len(rows) - len(paths)
    if missing:
        log.warning("export: %d image(s) of the run's splits no longer exist; left out", missing)
    return paths, labels, np.array(use_pil, bool)


def parity_images(run, limit: int, seed: int = 0) -> tuple[str, np.ndarray, np.ndarray]:
    """(split name, uint8 images (N, H, W, C), labels (N,)) for the parity check."""
    table = run.splits
    for split in ("test", "val", "train"):
        rows = table[table["split"] == split]
        if len(rows):
            break
    if len(rows) > limit:
        rows = rows.sample(limit, random_state=seed)
    paths, labels, use_pil = _existing_paths(rows)
    if not paths:
        raise DataError(received("export", "run", run.path, "none of the run's images can be read for the parity check",
                                 "Keep the training data where it was when the run trained"))
    if not run.classes:  # a numeric target: the values
        return split, decode(run, paths, use_pil), np.asarray(labels, np.float64)
    index = {c: i for i, c in enumerate(run.classes)}
    return split, decode(run, paths, use_pil), np.array([index[label] for label in labels])


def calibration_images(run, n: int, seed: int = 0) -> np.ndarray:
    """A random sample of `n` training images, decoded as in training: (n, H, W, C) uint8."""
    rows = run.splits
    rows = rows[rows["split"] == "train"]
    if len(rows) > n:
        rows = rows.sample(n, random_state=seed)
    paths, _, use_pil = _existing_paths(rows)
    if not paths:
        raise DataError(received("export", "quantize", "int8", "int8 calibrates on the run's training images and none can be read",
                                 "Keep the training data where it was, or use quantize=dynamic"))
    return decode(run, paths, use_pil)


def decode(run, paths: list[str], use_pil=None) -> np.ndarray:
    """(N, H, W, C) uint8 pixels, decoded and resized by the training pipeline."""
    from kiln.tasks.image.predict import dataset

    ds = dataset(run, paths, batch_size=64, use_pil=use_pil).map(lambda x, y: x)
    return np.concatenate([b.numpy() for b in ds])
