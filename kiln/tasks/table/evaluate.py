"""Table metrics for a run (val/test, the baselines beside them, importance), `kiln evaluate` on
another file, `kiln predict` of a file, and K-fold cross-validation."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.errors import DataError, received
from kiln.io import write_csv, write_json

log = logging.getLogger("kiln.table")


def split_rows(run, name: str | None = None) -> pd.DataFrame:
    """The run's source rows with their split (re-read from the source file)."""
    from kiln.tasks.common.tabular import read_table

    frame = read_table(run.meta["source"]["path"], "evaluate").frame
    splits = pd.read_csv(run.path / "splits.csv")
    rows = frame.iloc[splits["row"].to_numpy()].reset_index(drop=True)
    rows["split"] = splits["split"].to_numpy()
    return rows if name is None else rows[rows["split"] == name].reset_index(drop=True)


def metrics_for(spec, y, out, threshold=None) -> dict:
    from kiln.tasks.table.metrics import classify_metrics, regress_metrics

    return classify_metrics(y, out, spec.classes, threshold) if spec.task == "classification" else regress_metrics(y, out)


def evaluate_fresh(task, run, data, cfg) -> dict:
    """metrics.json of a new run: {"val", "test", "baselines": {split: {name: metrics}}, "importance"}."""
    from kiln.evaluate.threshold import run_threshold
    from kiln.tasks.table.spec import encode_rows, predict_inputs

    spec = data.spec
    run.__dict__.pop("meta", None)
    threshold = run_threshold(run.meta) if spec.classes and len(spec.classes) == 2 else None
    metrics, sets = {}, {}
    model = run.model
    for split in ("val", "test"):
        rows = data.split(split)
        if len(rows):
            x, y = encode_rows(rows, spec), task.targets(rows, spec)  # encoded once: metrics, baselines, importance
            metrics[split] = metrics_for(spec, y, predict_inputs(model, x), threshold)
            sets[split] = (x, y)
    if cfg.table.baselines and sets:
        from kiln.tasks.table.baselines import fit_baselines

        train = data.split("train")
        metrics["baselines"] = fit_baselines(spec, encode_rows(train, spec), task.targets(train, spec), sets, cfg.seed)
    if cfg.table.importance and "val" in sets:
        from kiln.tasks.table.importance import permutation_importance

        metrics["importance"] = permutation_importance(lambda x: predict_inputs(model, x), *sets["val"], spec, cfg.seed)
    return metrics


def _read_labelled(task, run, path, component: str):
    from kiln.tasks.common.tabular import read_table

    spec = task.load_spec(run.meta)
    frame = read_table(path, component).frame
    missing = [f.column for f in spec.used if f.column not in frame.columns]
    if missing:
        raise DataError(received(component, "column", missing[0], f"the model needs it and {Path(path).name} has no such column"
                                 + (f" ({len(missing) - 1} more missing: {', '.join(missing[1:4])})" if len(missing) > 1 else ""),
                                 "Add the column (empty cells are fine: they are imputed as in training)"))
    return spec, frame


def evaluate_file(task, run, data: str | None, split: str, out: str | None, threshold: float | None = None, **_) -> dict:
    from kiln.evaluate.threshold import run_threshold

    if data is None:
        spec, rows = task.load_spec(run.meta), split_rows(run, split)
    else:
        spec, rows = _read_labelled(task, run, data, "evaluate")
        if spec.target not in rows.columns:
            raise DataError(received("evaluate", "data", data, f"it has no target column {spec.target}", "Evaluate on a labelled file"))
    y = task.targets(rows, spec)
    keep = y >= 0 if spec.task == "classification" else np.isfinite(y)
    rows, y = rows[keep].reset_index(drop=True), y[keep]
    if not len(rows):
        raise DataError(received("evaluate", "data", data or split, "no rows with a known target", "Evaluate on labelled rows"))
    t = threshold if threshold is not None else (run_threshold(run.meta) if spec.classes and len(spec.classes) == 2 else None)
    result = metrics_for(spec, y, task.predict_outputs(run, rows), t)  # the keys metrics.json has for a split
    if out:
        write_json(out, result)
    return result


def predict_file(task, run, inputs, out: str | None, runtime: str = "auto") -> list[dict]:
    """Every column of the file kept, plus `prediction` (and proba_<class> columns); `runtime`: see runtime.py."""
    from kiln.evaluate.threshold import apply_threshold, run_threshold
    from kiln.tasks.table.runtime import predictor
    from kiln.tasks.table.spec import encode_rows

    predict, where = predictor(task, run, runtime)  # a wrong runtime= is named before the file is read

    if isinstance(inputs, pd.DataFrame):  # rows already read (Python API, the contract test)
        spec, frame = task.load_spec(run.meta), inputs.astype(object).where(inputs.notna(), "").astype(str)
        missing = [f.column for f in spec.used if f.column not in frame.columns]
        if missing:
            raise DataError(received("predict", "column", missing[0], "the model needs it and the rows have no such column", "Add the column"))
    else:
        paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        if len(paths) != 1:
            raise DataError(received("predict", "inputs", " ".join(map(str, paths)), "a table run predicts one file at a time",
                                     "Example: kiln predict runs/train rows.csv out=pred.csv"))
        spec, frame = _read_labelled(task, run, paths[0], "predict")
    outputs = predict(encode_rows(frame, spec)) if len(frame) else task.predict_outputs(run, frame)
    print(f"kiln: predicted {len(frame)} row(s) ({where})", file=sys.stderr, flush=True)
    result = frame.copy()
    if spec.classes:
        t = run_threshold(run.meta) if len(spec.classes) == 2 else None
        result["prediction"] = np.asarray(spec.classes, dtype=object)[apply_threshold(outputs, t)]
        if len(spec.classes) == 2 and "threshold" not in frame.columns:  # the cut the prediction came from (a user column wins)
            result["threshold"] = 0.5 if t is None else t
        for i, c in enumerate(spec.classes):
            result[f"proba_{c}"] = outputs[:, i]
    else:
        result["prediction"] = outputs[:, 0]
    if out:
        write_csv(result, out)
        print(f"kiln: wrote {len(result)} predictions to {out} ({where})", flush=True)
        return []
    return result.to_dict(orient="records")


def cross_validate(task, data, cfg, model_name: str, run_dir) -> dict:
    """K folds over train + val (test stays held out): each fold trains with 10% of its rows for early
    stopping and is scored on the fold; mean and std per metric."""
    from sklearn.model_selection import KFold, StratifiedKFold

    from kiln.run import Run
    from kiln.tasks.base import Prepared
    from kiln.tasks.table.folds import fit_model

    rows = data.rows[data.rows["split"] != "test"].reset_index(drop=True)
    y = data.extra["y"][(data.rows["split"] != "test").to_numpy()]
    k = cfg.table.cv
    splitter = StratifiedKFold(k, shuffle=True, random_state=cfg.seed) if data.spec.classes else KFold(k, shuffle=True, random_state=cfg.seed)
    folds = []
    rng = np.random.default_rng(cfg.seed)
    for i, (fit_idx, hold_idx) in enumerate(splitter.split(rows, y if data.spec.classes else None)):
        split = np.full(len(rows), "test", dtype=object)
        split[fit_idx] = np.where(rng.random(len(fit_idx)) < 0.1, "val", "train")
        fold = Prepared(rows=rows.assign(split=split), spec=data.spec, skipped=data.skipped, classes=data.classes, extra={"y": y})
        model, _ = fit_model(task, fold, cfg, model_name, run_dir, verbose=0)
        held = fold.split("test")
        from kiln.tasks.table.spec import encode_rows, predict_inputs

        out = predict_inputs(model, encode_rows(held, data.spec))
        threshold = None
        if data.spec.classes and len(data.spec.classes) == 2:  # the run's rule, chosen on the fold's own val rows
            from kiln.evaluate.threshold import choose_threshold, parse_rule, resolve_rule

            val = fold.split("val")
            threshold = 0.5
            rule = resolve_rule(cfg.evaluate.threshold, y[fit_idx][split[fit_idx] == "train"])[0]
            if len(val) and parse_rule(rule)[0] != "argmax":
                threshold = choose_threshold(task.targets(val, data.spec), predict_inputs(model, encode_rows(val, data.spec)), rule)[0]
        m = metrics_for(data.spec, y[hold_idx], out, threshold)
        folds.append({k2: v for k2, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        log.info("train: cv fold %d/%d done", i + 1, k)
    keys = [key for key in folds[0] if all(f.get(key) is not None for f in folds)]
    return {"folds": k, **{key: {"mean": float(np.mean([f[key] for f in folds])), "std": float(np.std([f[key] for f in folds]))}
                           for key in keys if key != "n"}}


__all__ = ["cross_validate", "evaluate_file", "evaluate_fresh", "predict_file", "split_rows"]
