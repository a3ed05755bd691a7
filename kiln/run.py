"""A run folder: the unit a person handles. `Run` reads one and evaluates or predicts with it.

Layout: config.yaml, run.json (classes, image spec), splits.csv, model.keras, history.csv,
metrics.json, tensorboard/, plots/, checkpoints/.
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.errors import KilnError, received

log = logging.getLogger("kiln")


class Run:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @cached_property
    def meta(self) -> dict:
        return json.loads((self.path / "run.json").read_text())

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def spec(self):
        from kiln.tasks.image.data.prepare import ImageSpec

        return ImageSpec.from_dict(self.meta["image"])

    @cached_property
    def config(self):
        from kiln.config import load_config

        return load_config(self.path / "config.yaml")

    @property
    def metrics(self) -> dict:
        p = self.path / "metrics.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    @property
    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "history.csv")

    @property
    def splits(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "splits.csv", dtype=str, keep_default_na=False)

    @cached_property
    def model(self):
        import keras

        # safe_mode refuses Lambda layers and anything that would unpickle code.
        return keras.saving.load_model(self.path / "model.keras", safe_mode=True, compile=False)

    def dataset(self, paths, labels=None, batch_size: int = 64, use_pil=None):
        from kiln.tasks.image.data.pipeline import make_dataset

        labels = np.zeros(len(paths), int) if labels is None else labels
        spec = self.spec
        return make_dataset(paths, labels, len(self.classes), size=spec.size, channels=spec.channels, resize=spec.resize,
                            batch_size=batch_size, use_pil=use_pil)

    def predict_proba(self, paths, batch_size: int = 64, use_pil=None) -> np.ndarray:
        """(N, K) class probabilities for image files, in order."""
        if len(paths) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        ds = self.dataset(list(paths), batch_size=batch_size, use_pil=use_pil).map(lambda x, y: x)
        return np.asarray(self.model.predict(ds, verbose=0))

    def evaluate(self, data: str | None = None, split: str = "test", out: str | None = None, top_k: int | None = None,
                 threshold: float | None = None) -> dict:
        """Metrics for one split of this run's data, or for every image of another labelled source.

        Two-class runs decide with the threshold stored in run.json; `threshold=` overrides it here.
        """
        if "task" in self.meta:  # runs of a task behind the contract (image runs get there with the seam)
            from kiln.tasks.base import task_of

            return task_of(self.meta).evaluate_run(self, data=data, split=split, out=out, threshold=threshold)
        from kiln.tasks.image.evaluate import evaluate_run

        return evaluate_run(self, data=data, split=split, out=out, top_k=top_k, threshold=threshold)

    def predict(self, paths, top_k: int = 5, out: str | None = None) -> list[dict]:
        """One dict per readable image: path, label, score, top_k [[label, score], ...]."""
        if "task" in self.meta:
            from kiln.tasks.base import task_of

            return task_of(self.meta).predict(self, paths, out=out, top_k=top_k)
        from kiln.tasks.image.predict import predict_paths

        return predict_paths(self, paths, top_k=top_k, out=out)


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / "run.json").is_file() or not (path / "model.keras").is_file():
        raise KilnError(received("run", "path", path, "it is not a finished Kiln run folder (no run.json / model.keras)",
                                 "Pass a folder written by kiln train, e.g. runs/train"))
    return Run(path)


def new_run_dir(run_dir: str | None, runs_root: str, name: str | None, default_name: str = "train") -> Path:
    """`run_dir` as given (must not hold a finished run), or runs_root/name auto-numbered."""
    if run_dir:
        path = Path(run_dir)
        if (path / "model.keras").exists() or (path / "run.json").exists():
            raise KilnError(received("train", "run_dir", run_dir, "it already holds a finished run, which Kiln never overwrites",
                                     "Pick a new run_dir or leave it out to auto-number"))
        path.mkdir(parents=True, exist_ok=True)
        return path
    root = Path(runs_root)
    base = name or default_name
    for i in range(1, 100000):
        path = root / (base if i == 1 else f"{base}-{i}")
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise KilnError(received("train", "runs_root", runs_root, "too many runs share this name", "Set name=... or run_dir=..."))


__all__ = ["Run", "load_run", "new_run_dir"]
