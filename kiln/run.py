"""A run folder: the unit a person handles. `Run` reads one and evaluates or predicts with it.

Layout: config.yaml, run.json (the task, its spec, counts, versions), splits.csv, model.keras,
history.csv, metrics.json, tensorboard/, plots/, checkpoints/. What depends on the data (the spec,
predictions, evaluation) is the run's task's (run.json "task"; a run.json without one is an image run).
Every file is read through kiln/io.py, so a damaged one is one line naming it (exit 2 in the CLI), never
a traceback.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.errors import ConfigError, KilnError, bad_file, received
from kiln.io import REWRITE, check_keras, load_keras, read_csv, read_json, read_yaml

RETRAIN = "Restore it from a copy, or train the run again"

log = logging.getLogger("kiln")

if TYPE_CHECKING:  # annotations only: `kiln --help` and `import kiln` do not pay for pandas (~0.3-0.5 s)
    import numpy as np
    import pandas as pd


class Run:
    def __init__(self, path: str | Path, meta: dict | None = None, model=None):
        """`meta` and `model`: the trainer's run.json and model before they are written (a task's after_fit reads them)."""
        self.path = Path(path)
        if meta is not None:
            self.__dict__["meta"] = meta
        if model is not None:
            self.__dict__["model"] = model

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @cached_property
    def meta(self) -> dict:
        return read_json(self.path / "run.json", "a Kiln run.json", fix=RETRAIN)  # the task's keys: see `spec`

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
        try:
            return self.task.load_spec(self.meta)
        except (KeyError, TypeError, ValueError):
            raise bad_file(self.path / "run.json", f"it is not a Kiln run.json (its {self.task.info.name} spec is missing or "
                           "incomplete)", RETRAIN) from None

    @cached_property
    def config(self):
        """config.yaml with the values its `auto` keys took in this run (run.json "auto")."""
        from kiln.config import load_config

        path = self.path / "config.yaml"
        read_yaml(path, "a Kiln config", fix=RETRAIN)  # cut short or not YAML: named here, not as a --config mistake
        chosen = {k: d["value"] for k, d in self.meta.get("auto", {}).items() if not k.startswith("data.")}
        try:
            return load_config(path, overrides=chosen)
        except ConfigError as err:  # keys this Kiln does not know: most likely a newer Kiln wrote it
            detail = str(err).split(" received ", 1)[-1].split(". ")[0]  # "unknown key foo; it is not a config key"
            raise bad_file(path, f"it holds a setting this Kiln cannot use ({detail})",
                           "Upgrade Kiln if a newer one wrote it, or fix that key") from None

    @property
    def metrics(self) -> dict:
        p = self.path / "metrics.json"
        return read_json(p, "a Kiln metrics.json", fix=REWRITE) if p.exists() else {}

    @property
    def history(self) -> pd.DataFrame:
        return read_csv(self.path / "history.csv", ("epoch",), "a Kiln history.csv", fix=RETRAIN)

    @property
    def splits(self) -> pd.DataFrame:
        return read_csv(self.path / "splits.csv", ("path", "label", "split"), "a Kiln splits.csv", fix=RETRAIN,
                        dtype=str, keep_default_na=False)

    @cached_property
    def model(self):
        from kiln.user_model import load_model

        # safe mode: Lambda layers and pickled code are refused; a run trained with model=FILE.py:build imports that
        # file first (its registered classes), only while the file is the one it trained with
        return load_model(self.path / "model.keras", self.meta, load_keras)

    def check(self) -> None:
        """Read every file of the run far enough to know it is whole (cheaply, before TensorFlow starts),
        so a damaged one fails now, naming it, not halfway through the work."""
        self.meta  # noqa: B018 - cached
        self.spec  # noqa: B018
        check_keras(self.path / "model.keras", RETRAIN)
        for name, read in (("splits.csv", lambda p: read_csv(p, ("split",), "a Kiln splits.csv", fix=RETRAIN, nrows=2,
                                                             dtype=str)),
                           ("history.csv", lambda p: read_csv(p, ("epoch",), "a Kiln history.csv", fix=RETRAIN, nrows=2)),
                           ("config.yaml", lambda p: read_yaml(p, fix=RETRAIN)),
                           ("metrics.json", lambda p: read_json(p, "a Kiln metrics.json", fix=REWRITE))):
            if (self.path / name).exists():
                read(self.path / name)

    def predict_proba(self, inputs, **options) -> np.ndarray:
        """The model's output for `inputs` (image files: (N, K) class probabilities), in order."""
        return self.task.predict_outputs(self, inputs, **options)

    def evaluate(self, data: str | None = None, split: str = "test", out: str | None = None, **options) -> dict:
        """Metrics for one split of this run's data, or for every example of another labelled source.

        Two-class runs decide with the threshold stored in run.json; `threshold=` overrides it here. A run whose model
        returns a score and a flag (TaskInfo returns "score_flag") reads its own `threshold=` (a score or its rules).
        """
        if options.get("threshold") is not None and self.task.returns(self.meta) != "score_flag":
            options["threshold"] = self.evaluation_threshold(options["threshold"])
        return self.task.evaluate_run(self, data=data, split=split, out=out, **options)

    def evaluation_threshold(self, rule) -> float:
        """`threshold=` of `kiln evaluate` as a number: a number as given, argmax as 0.5, a rule (auto, max_f1, youden,
        precision>=X, recall>=X) chosen again on this run's val split, as training chose it."""
        from kiln.evaluate.threshold import choose_threshold, parse_rule

        kind, value = parse_rule(rule)  # a bad rule: one line naming the rules
        if not self.classes or len(self.classes) != 2:
            raise ConfigError(received("evaluate", "threshold", rule, f"a decision threshold applies to two-class runs and this run "
                                       f"has {len(self.classes or [])} classes", "Leave threshold out"))
        if kind == "fixed":
            return float(value)
        if kind == "argmax":
            return 0.5
        val = self.task.split_outputs(self, "val")
        if val is None:
            raise ConfigError(received("evaluate", "threshold", rule, "choosing it needs the run's val split, and this run has none "
                                       "that its task can score again", "Pass a number (threshold=0.3) or threshold=argmax"))
        y_train = self.task.split_outputs(self, "train", outputs=False) if kind == "auto" else None
        return float(choose_threshold(val[0], val[1], rule, y_train=y_train)[0])

    def predict(self, inputs, out: str | None = None, **options) -> list[dict]:
        """One dict per input (image runs: path, label, score, top_k [[label, score], ...]); `top_k=5`.
        `runtime=` one of auto and the task's `info.runtimes` (tables: keras, onnx; the others keras)."""
        runtime, runtimes = options.pop("runtime", None), self.task.info.runtimes
        if runtime is not None:
            if runtime not in ("auto", *runtimes):
                raise ConfigError(received("predict", "runtime", runtime, f"{self.task.info.name} runs predict with runtime "
                                           f"{', '.join(('auto', *runtimes))}", "Leave runtime out, or serve the run's export with kiln serve"))
            if len(runtimes) > 1:
                options["runtime"] = runtime
        return self.task.predict(self, inputs, out=out, **options)


def load_run(path: str | Path) -> Run:
    """A finished run folder, its files checked now (a damaged one fails here, naming the file)."""
    path = Path(path)
    if not (path / "run.json").exists() or not (path / "model.keras").exists():
        raise KilnError(received("run", "path", path, "it is not a finished Kiln run folder (no run.json / model.keras)",
                                 "Pass a folder written by kiln train, e.g. runs/train"))
    run = Run(path)
    run.check()
    return run


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
