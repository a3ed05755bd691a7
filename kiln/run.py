"""A run folder: the unit a person handles. `Run` reads one and evaluates or predicts with it.

Layout: config.yaml, run.json (the task, its spec, counts, versions), splits.csv, model.keras,
history.csv, metrics.json, tensorboard/, plots/, checkpoints/. What depends on the data (the spec,
predictions, evaluation) is the run's task's (run.json "task"; a run.json without one is an image run).
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

    @cached_property
    def task(self):
        """The registered task this run was trained for (kiln/tasks/base.py)."""
        from kiln.tasks.base import task_of

        return task_of(self.meta)

    @property
    def classes(self) -> list[str] | None:
        return self.meta.get("classes")

    @property
    def spec(self):
        return self.task.load_spec(self.meta)

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

    def predict_proba(self, inputs, **options) -> np.ndarray:
        """The model's output for `inputs` (image files: (N, K) class probabilities), in order."""
        return self.task.predict_outputs(self, inputs, **options)

    def evaluate(self, data: str | None = None, split: str = "test", out: str | None = None, **options) -> dict:
        """Metrics for one split of this run's data, or for every example of another labelled source.

        Two-class runs decide with the threshold stored in run.json; `threshold=` overrides it here.
        """
        return self.task.evaluate_run(self, data=data, split=split, out=out, **options)

    def predict(self, inputs, out: str | None = None, **options) -> list[dict]:
        """One dict per input (image runs: path, label, score, top_k [[label, score], ...]); `top_k=5`."""
        return self.task.predict(self, inputs, out=out, **options)


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
