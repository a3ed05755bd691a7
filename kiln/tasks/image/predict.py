"""`kiln predict RUN_DIR PATH...`: labels and scores for image files and folders."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.tasks.image.data.sources import IMAGE_SUFFIXES
from kiln.errors import DataError, received

log = logging.getLogger("kiln.predict")


def dataset(run, paths, labels=None, batch_size: int = 64, use_pil=None):
    """A tf.data of (pixels, one-hot) for image files, decoded and resized as the run's training was."""
    from kiln.tasks.image.data.pipeline import make_dataset

    labels = np.zeros(len(paths), int) if labels is None else labels
    spec = run.spec
    return make_dataset(paths, labels, len(run.classes or []), size=spec.size, channels=spec.channels, resize=spec.resize,
                        batch_size=batch_size, use_pil=use_pil, background=spec.alpha_background)


def decode_files(run, paths, use_pil=None) -> np.ndarray:
    """(N, H, W, C) uint8: image files decoded and resized as training did, without TensorFlow."""
    from kiln.tasks.image.data.decode import decode_batch

    spec = run.spec
    return decode_batch(list(paths), tuple(spec.size), spec.channels, spec.resize, use_pil, files=True,
                        background=spec.alpha_background)


def expand_paths(paths) -> list[str]:
    """Files as given; folders searched recursively for image files."""
    files = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files += sorted(str(f) for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(str(path))
        else:
            raise DataError(received("predict", "path", p, "no such file or folder", "Pass image files or folders"))
    if not files:
        raise DataError(received("predict", "path", " ".join(map(str, paths)), "no image files were found", "Pass image files or folders"))
    return files


def predict_paths(run, paths, top_k: int = 5, out: str | None = None, runtime: str = "auto") -> list[dict]:
    """`runtime`: auto, keras or onnx (kiln/export/runtime.py); the one used is logged."""
    from kiln.export.runtime import announce, export_model
    from kiln.tasks.image.data import check

    model = export_model(run, runtime)  # a wrong runtime= is named before any image is read
    files = expand_paths([paths] if isinstance(paths, (str, Path)) else paths)
    facts = check.scan(files, run.config.image.max_pixels)
    bad = facts[~facts["ok"]]
    for _, row in bad.iterrows():
        log.warning("predict: skipped %s (%s)", row["path"], row["error"])
    good = facts[facts["ok"]]
    from kiln.evaluate.threshold import apply_threshold, run_threshold

    use_pil = np.asarray(check.needs_pil(good.reset_index(drop=True)), bool)
    probs = run.task.predict_outputs(run, good["path"].tolist(), use_pil=use_pil, model=model)
    announce(run, model, len(probs), "image(s)")
    if not run.classes:  # a numeric target: one value per image
        return _values(run, good["path"].tolist(), probs, out)
    k = min(top_k, len(run.classes))
    chosen = apply_threshold(probs, run_threshold(run)) if len(probs) else []  # argmax unless a two-class threshold is stored
    results = []
    for path, p, c in zip(good["path"], probs, chosen):
        order = np.argsort(-p)[:k]
        results.append({"path": path, "label": run.classes[c], "score": float(p[c]),
                        "top_k": [[run.classes[i], float(p[i])] for i in order],
                        **({"threshold": run_threshold(run) or 0.5} if len(run.classes) == 2 else {})})  # the cut it came from
    if out:
        from kiln.io import write_text

        table = pd.DataFrame([{"path": r["path"], "label": r["label"], "score": r["score"],
                               **({"threshold": r["threshold"]} if "threshold" in r else {}),
                               **{f"p_{c}": float(p[i]) for i, c in enumerate(run.classes)}}
                              for r, p in zip(results, probs)])
        write_text(Path(out), table.to_csv(index=False))
    return results


def _values(run, paths: list[str], outputs: np.ndarray, out: str | None) -> list[dict]:
    """Image regression: {"path", "value"} per image (CSV: path,<target>)."""
    results = [{"path": p, "value": float(v)} for p, v in zip(paths, np.asarray(outputs).reshape(-1))]
    if out:
        from kiln.io import write_text

        target = (run.meta.get("target") or {}).get("name", "value")
        write_text(Path(out), pd.DataFrame({"path": paths, target: [r["value"] for r in results]}).to_csv(index=False))
    return results
