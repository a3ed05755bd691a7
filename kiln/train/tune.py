"""`kiln tune`: hyperparameter search with KerasTuner over a space declared in the config.

    tune:
      algorithm: bayesian          # random | hyperband | bayesian
      trials: 20
      trial_epochs: 10             # hyperband: the most epochs any trial gets
      objective: val_accuracy      # a history.csv column; *loss is minimised
      space:
        train.lr: {min: 1.0e-4, max: 1.0e-2, sampling: log}
        model.dropout: {min: 0.0, max: 0.5, step: 0.1}
        model.filters: [[16, 32], [32, 64, 128]]
        optimizer: [adam, sgd]

Every trial is an ordinary `kiln train` run in TUNE/trials/trial_N (so it can be evaluated,
exported or reused); KerasTuner's oracle state lives in TUNE/keras_tuner. The search ends with
TUNE/results.csv (one row a trial, best first), a printed table, and TUNE/best.yaml: the base config
with the best values, ready for `kiln train --config TUNE/best.yaml`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kiln.config import Config, dump_config, load_config
from kiln.config.schema import config_model
from kiln.config.load import _flatten, leaf_keys, resolve_key
from kiln.errors import ConfigError, KilnError, received
from kiln.io import write_text

log = logging.getLogger("kiln.train")

FIXED = ("run_dir", "name", "runs_root", "data.path", "train.resume")  # keys a search may not vary


@dataclass
class Dimension:
    """One searched config key and how it maps to a KerasTuner hyperparameter."""

    key: str  # dotted config key
    kind: str  # choice | int | float
    values: list = field(default_factory=list)  # choice: the config values
    labels: list = field(default_factory=list)  # choice: what KerasTuner sees (same scalar type)
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    sampling: str = "linear"

    def declare(self, hp) -> None:
        if self.kind == "choice":
            hp.Choice(self.key, self.labels)
        elif self.kind == "int":
            hp.Int(self.key, int(self.low), int(self.high), step=int(self.step or 1), sampling=self.sampling)
        else:
            hp.Float(self.key, self.low, self.high, step=self.step, sampling=self.sampling)

    def decode(self, value):
        if self.kind == "choice":
            return self.values[self.labels.index(value)]
        return int(value) if self.kind == "int" else float(value)

    def describe(self) -> str:
        if self.kind == "choice":
            return f"one of {self.values}"
        return f"{self.low:g}..{self.high:g}" + (f" step {self.step:g}" if self.step else "") + (" (log)" if self.sampling == "log" else "")


def _labels(values: list) -> list:
    """KerasTuner choices must share one scalar type; anything else is offered as its JSON text."""
    kinds = {type(v) for v in values}
    if len(kinds) == 1 and kinds <= {int, float, str, bool}:
        return list(values)
    if kinds <= {int, float}:
        return [float(v) for v in values]
    return [json.dumps(v) for v in values]


def parse_space(cfg: Config) -> list[Dimension]:
    """`tune.space` -> dimensions, each checked: a real config key, and every choice / both ends valid."""
    if not cfg.tune.space:
        raise ConfigError(received("tune", "tune.space", "{}", "the search space is empty",
                                   "Declare it in the config, e.g. tune: {space: {train.lr: {min: 1.0e-4, max: 1.0e-2, sampling: log}}}"))
    leaves = leaf_keys(config_model())
    base = _flatten(cfg.model_dump(mode="json"))
    dims = []
    for raw_key, spec in cfg.tune.space.items():
        key = resolve_key(raw_key, config_model(), "tune")  # task sections too (text.*, ...)
        if key.startswith("tune.") or key in FIXED:
            raise ConfigError(received("tune", "tune.space", raw_key, "this key cannot be searched",
                                       "Search training settings such as train.lr, model.dropout or data.batch_size"))
        if isinstance(spec, list):
            dim = Dimension(key, "choice", values=list(spec), labels=_labels(list(spec)))
            probes = dim.values
        else:
            integer = leaves[key].annotation is int
            dim = Dimension(key, "int" if integer else "float", low=spec["min"], high=spec["max"], step=spec.get("step"),
                            sampling=spec.get("sampling", "linear"))
            probes = [int(dim.low), int(dim.high)] if integer else [float(dim.low), float(dim.high)]
        for value in probes:  # fail before the first trial, not in the middle of the search
            try:
                load_config(overrides={**base, key: value})
            except ConfigError as err:
                raise ConfigError(f"tune received tune.space.{raw_key}={value}; {str(err).split('; ', 1)[-1]}") from None
        dims.append(dim)
    return dims


def trial_config(cfg: Config, values: dict[str, Any], run_dir: Path, epochs: int | None = None) -> Config:
    flat = _flatten(cfg.model_dump(mode="json", exclude={"tune"}))
    flat.update(values)
    flat.update({"run_dir": str(run_dir), "name": None})
    if epochs:
        flat["train.epochs"] = int(epochs)
    return load_config(overrides=flat)


def best_value(history, objective: str) -> float:
    if objective not in history:
        raise ConfigError(received("tune", "tune.objective", objective, "the trial's history.csv has no such column",
                                   f"Use one of: {', '.join(c for c in history.columns if c not in ('epoch', 'phase', 'lr'))}"))
    column = history[objective].astype(float)
    return float(column.min() if "loss" in objective else column.max())


def _oracle(cfg: Config, hp, objective):
    import keras_tuner as kt

    t = cfg.tune
    epochs = t.trial_epochs or cfg.train.epochs
    if epochs == "auto":  # hyperband needs a number before any data is read: the most epochs auto would take
        from kiln.train.auto import EPOCHS_RANGE

        epochs = EPOCHS_RANGE[1]
    if t.algorithm == "hyperband":
        return kt.oracles.HyperbandOracle(objective=objective, max_epochs=epochs, factor=t.hyperband_factor, seed=cfg.seed,
                                         hyperparameters=hp)
    if t.algorithm == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(objective=objective, max_trials=t.trials, seed=cfg.seed, hyperparameters=hp)
    return kt.oracles.RandomSearchOracle(objective=objective, max_trials=t.trials, seed=cfg.seed, hyperparameters=hp)


def _tuner_class():
    import keras_tuner as kt

    class KilnTuner(kt.engine.base_tuner.BaseTuner):
        """Each trial is a `kiln train` run; the oracle sees the best objective value of its history."""

        def __init__(self, oracle, cfg: Config, dims: list[Dimension], folder: Path, **kwargs):
            super().__init__(oracle, directory=str(folder), project_name="keras_tuner", **kwargs)
            self.cfg, self.dims, self.folder = cfg, dims, folder
            self.records: dict[str, dict] = {}
            self.fatal: KilnError | None = None

        def run_trial(self, trial, *args, **kwargs):
            from kiln.train.trainer import train

            hp = trial.hyperparameters
            values = {d.key: d.decode(hp.get(d.key)) for d in self.dims}
            epochs = hp.values.get("tuner/epochs") or self.cfg.tune.trial_epochs
            run_dir = self.folder / "trials" / f"trial_{trial.trial_id}"
            started = time.time()
            try:
                run = train(trial_config(self.cfg, values, run_dir, epochs))
                value = best_value(run.history, self.cfg.tune.objective)
            except KilnError as err:  # a config or data problem: stop the search, say why
                self.fatal = err
                raise kt.errors.FatalError(str(err)) from None
            self.records[trial.trial_id] = {"seconds": round(time.time() - started, 1), "epochs": int(len(run.history)),
                                            "run_dir": str(run_dir)}
            return {self.cfg.tune.objective: value}

    return KilnTuner


def results_table(rows: list[dict], keys: list[str], objective: str) -> str:
    head = ["trial", objective, *keys, "epochs", "seconds", "status"]
    def show(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    body = [[r["trial"], "" if r["score"] is None else f"{r['score']:.4f}", *[show(r["values"].get(k, "")) for k in keys],
             str(r.get("epochs", "")), str(r.get("seconds", "")), r["status"]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in [head, *body]]
    return "\n".join(lines)


def tune(cfg: Config) -> dict:
    """Run the search for `cfg.tune`; returns {"best": {...}, "best_config": path, "results": path, "trials": [...]}."""
    import keras_tuner as kt
    import pandas as pd

    from kiln.run import new_run_dir

    dims = parse_space(cfg)
    folder = new_run_dir(cfg.run_dir, cfg.runs_root, cfg.name, default_name="tune")
    write_text(folder / "config.yaml", dump_config(cfg))
    objective = kt.Objective(cfg.tune.objective, "min" if "loss" in cfg.tune.objective else "max")
    hp = kt.HyperParameters()
    for dim in dims:
        dim.declare(hp)
    print(f"kiln: tune ({cfg.tune.algorithm}) in {folder}, objective {cfg.tune.objective}; space: "
          + "; ".join(f"{d.key} {d.describe()}" for d in dims), flush=True)
    tuner = _tuner_class()(_oracle(cfg, hp, objective), cfg, dims, folder)
    try:
        tuner.search(verbose=1 if cfg.train.verbose else 0)
    except kt.errors.FatalError:
        if tuner.fatal is not None:
            raise tuner.fatal from None
        raise

    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        score = trial.score if trial.score is not None and math.isfinite(trial.score) else None
        values = {d.key: d.decode(trial.hyperparameters.get(d.key)) for d in dims}
        rows.append({"trial": trial_id, "score": score, "values": values, "status": str(trial.status),
                     **tuner.records.get(trial_id, {})})
    scored = [r for r in rows if r["score"] is not None]
    if not scored:
        raise KilnError(received("tune", "tune.objective", cfg.tune.objective, "no trial finished with a score",
                                 f"See the trial folders under {folder / 'trials'}"))
    reverse = objective.direction == "max"
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0.0) if reverse else (r["score"] or 0.0)))
    best = rows[0]
    keys = [d.key for d in dims]
    frame = pd.DataFrame([{"trial": r["trial"], cfg.tune.objective: r["score"], **{k: json.dumps(r["values"][k]) if isinstance(r["values"][k], list)
                           else r["values"][k] for k in keys}, "epochs": r.get("epochs"), "seconds": r.get("seconds"),
                           "status": r["status"], "run_dir": r.get("run_dir")} for r in rows])
    write_text(folder / "results.csv", frame.to_csv(index=False))

    best_cfg = trial_config(cfg, best["values"], Path("unused"))
    best_tree = best_cfg.model_dump(mode="json", exclude={"tune", "run_dir", "name"})
    if "train.epochs" not in best["values"]:
        best_tree["train"]["epochs"] = cfg.train.epochs  # the full run, not a trial's epoch budget
    header = (f"# Best of kiln tune {folder}: {cfg.tune.objective}={best['score']:.4f} (trial {best['trial']}).\n"
              f"# Train it: kiln train --config {folder / 'best.yaml'}\n")
    write_text(folder / "best.yaml", header + yaml.safe_dump(best_tree, sort_keys=False))
    load_config(folder / "best.yaml")  # it must be a valid config as written

    print(results_table(rows, keys, cfg.tune.objective), flush=True)
    print(f"kiln: best {cfg.tune.objective} {best['score']:.4f} with "
          + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["values"].items()), flush=True)
    print(f"kiln: best config {folder / 'best.yaml'}  (kiln train --config {folder / 'best.yaml'})", flush=True)
    return {"best": {"trial": best["trial"], "score": best["score"], "values": best["values"]},
            "best_config": str(folder / "best.yaml"), "results": str(folder / "results.csv"), "folder": str(folder),
            "trials": rows}
