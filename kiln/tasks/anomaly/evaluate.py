"""Scores, metrics and baselines of an anomaly run; `kiln evaluate` on another labelled file and `kiln predict`.

A score is the reduction (mean or max) of the model's per-feature / per-step errors; a row or window is flagged
when its score is above the run's threshold (run.json "threshold", chosen by `threshold.choose`). Metrics need
both classes for ROC-AUC, PR-AUC (average precision) and TPR at 1 % / 5 % FPR; without labels a split reports its
flagged share and the mean normal score. Baselines (PCA reconstruction error, Isolation Forest, LOF) are fitted
on the same normal training features the autoencoder reconstructs, and scored on the same rows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.errors import DataError, received
from kiln.io import write_csv, write_json

log = logging.getLogger("kiln.anomaly")
PREDICT_BATCH = 1024


def errors(model, x) -> np.ndarray:
    """(N, D) per-feature errors; (0, 0) for no rows."""
    n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    if not n:
        return np.zeros((0, 0), np.float32)
    return np.asarray(run_model(model, x), np.float32)


def run_model(model, x) -> np.ndarray:
    """`model` on table inputs (a dict of (N, 1) arrays, strings included: the table task's batched call) or windows."""
    if isinstance(x, dict):
        from kiln.tasks.table.spec import predict_inputs

        return predict_inputs(model, x, PREDICT_BATCH)
    return np.asarray(model.predict(x, batch_size=PREDICT_BATCH, verbose=0))


def reduce(errs: np.ndarray, spec) -> np.ndarray:
    if not len(errs):
        return np.zeros(0, np.float32)
    return errs.max(-1) if spec.reduction == "max" else errs.mean(-1)


def score_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float | None) -> dict:
    """n, anomalies, flagged share, FPR on normal rows; with both classes ROC-AUC, PR-AUC, TPR at 1 / 5 % FPR, P / R / F1."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    normal, bad = scores[labels == 0], scores[labels == 1]
    out = {"n": int(len(scores)), "normal": int(len(normal)), "anomalies": int(len(bad)),
           "score_normal": float(normal.mean()) if len(normal) else None}
    if threshold is not None:
        out["threshold"] = float(threshold)
        out["flagged"] = float(np.mean(scores > threshold)) if len(scores) else 0.0
        out["fpr"] = float(np.mean(normal > threshold)) if len(normal) else None
    if len(normal) and len(bad):
        y = (labels[labels >= 0] == 1).astype(int)
        s = scores[labels >= 0]
        fpr, tpr, _ = roc_curve(y, s)
        out.update({"roc_auc": float(roc_auc_score(y, s)), "pr_auc": float(average_precision_score(y, s)),
                    "tpr_at_fpr_1": float(np.max(tpr[fpr <= 0.01])), "tpr_at_fpr_5": float(np.max(tpr[fpr <= 0.05]))})
        if threshold is not None:
            flag = s > threshold
            tp = int((flag & (y == 1)).sum())
            p = tp / max(int(flag.sum()), 1)
            r = tp / int(y.sum())
            out.update({"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0})
    return out


# --- the rows of a run -------------------------------------------------------------------------------------
def run_split(run, split: str):
    """(model inputs, labels, frame of the rows / window starts) of one split of the run's own data."""
    spec = run.spec
    splits = pd.read_csv(run.path / "splits.csv")
    if spec.kind == "table":
        from kiln.tasks.anomaly.data import table_inputs
        from kiln.tasks.common.tabular import read_table

        frame = read_table(run.meta["source"]["path"], "evaluate").frame
        keep = splits[splits["split"] == split]
        rows = frame.iloc[keep["row"].to_numpy()].reset_index(drop=True)
        return table_inputs(rows, spec), keep["anomaly"].to_numpy(np.int64), rows
    if spec.kind == "image":
        from kiln.tasks.anomaly.data import image_inputs

        keep = splits[splits["split"] == split].reset_index(drop=True)
        return image_inputs(keep, spec), keep["anomaly"].to_numpy(np.int64), keep
    from kiln.tasks.anomaly.data import read_series_frame, series_windows

    frame = read_series_frame(run.meta["source"]["path"], spec, "evaluate")
    frame["split"], frame["_anomaly"] = splits["split"].to_numpy(), splits["anomaly"].to_numpy()
    x, y, starts = series_windows(frame, spec, split)
    return x, y, frame.iloc[starts].reset_index(drop=True)


def fresh_split(data, split: str, training: bool = False):
    """(inputs, labels) of a split of freshly prepared data; training=True keeps normal rows only."""
    spec = data.spec
    if spec.kind == "table":
        from kiln.tasks.anomaly.data import table_inputs

        rows = data.split(split)
        if training:
            rows = rows[rows["_anomaly"] != 1]
        return table_inputs(rows, spec), rows["_anomaly"].to_numpy(np.int64)
    if spec.kind == "image":
        from kiln.tasks.anomaly.data import image_inputs

        rows = data.split(split)
        if training:
            rows = rows[rows["_anomaly"] != 1]
        return image_inputs(rows, spec), rows["_anomaly"].to_numpy(np.int64)
    from kiln.tasks.anomaly.data import series_windows

    x, y, _ = series_windows(data.rows, spec, split)
    return (x[y != 1], y[y != 1]) if training else (x, y)


def _count(x) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


# --- baselines ---------------------------------------------------------------------------------------------
def baseline_scores(train: np.ndarray, sets: dict, seed: int) -> dict:
    """{name: {split: scores}} of PCA reconstruction error, Isolation Forest and LOF fitted on normal training features."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    rng = np.random.default_rng(seed)
    fit = train[rng.permutation(len(train))[:20_000]]
    k = int(min(fit.shape[1] - 1, max(1, PCA(random_state=seed).fit(fit).explained_variance_ratio_.cumsum().searchsorted(0.9) + 1)))
    pca = PCA(k, random_state=seed).fit(fit) if fit.shape[1] > 1 else None
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(fit)
    lof = LocalOutlierFactor(n_neighbors=min(20, len(fit) - 1), novelty=True).fit(fit)
    out = {"pca": {}, "isolation_forest": {}, "lof": {}}
    for split, x in sets.items():
        if pca is not None:
            out["pca"][split] = np.mean((x - pca.inverse_transform(pca.transform(x))) ** 2, axis=1)
        out["isolation_forest"][split] = -forest.score_samples(x)
        out["lof"][split] = -lof.score_samples(x)
    return {k: v for k, v in out.items() if v}


def seasonal_naive_scores(frame: pd.DataFrame, spec, starts: np.ndarray) -> np.ndarray:
    """A series window's mean |x_t - x_(t - season)| over its steps and channels, each channel in its training std."""
    v = (frame[spec.columns].to_numpy(np.float64) - np.asarray(spec.mean)) / np.asarray(spec.std)
    m = max(1, int(spec.season))
    resid = np.abs(v - v[np.maximum(np.arange(len(v)) - m, 0)]).mean(-1)
    c = np.concatenate([[0.0], np.cumsum(resid)])
    return (c[starts + spec.window] - c[starts]) / spec.window


def baseline_features(f, spec) -> np.ndarray:
    """What the baselines see: the autoencoder's scaled features; series windows also centred on their own mean per
    channel (with the levels they hold, a trending series puts every test window outside the training range and the
    baselines score nothing but the trend: Isolation Forest 0.50, PCA 0.48 on weekly CO2)."""
    f = np.asarray(f, np.float64)
    if spec.kind != "series":
        return f
    w = f.reshape(len(f), spec.window, len(spec.columns))
    return (w - w.mean(1, keepdims=True)).reshape(len(f), -1)


def evaluate_fresh(run, data, cfg) -> dict:
    """metrics.json of a new run: {"val", "test", "baselines": {split: {name: metrics}}, "threshold": details}."""
    from kiln.tasks.anomaly.models import feature_model

    spec, model = data.spec, run.model
    run.__dict__.pop("meta", None)
    threshold = run.meta.get("threshold")
    metrics, feats = {}, {}
    fm = feature_model(model) if cfg.anomaly.baselines else None
    for split in ("val", "test"):
        x, y = fresh_split(data, split)
        if not _count(x):
            continue
        errs = errors(model, x)
        scores = reduce(errs, spec)
        metrics[split] = score_metrics(scores, y, threshold)
        if spec.kind == "table" and split == "test":
            metrics["top_rows"] = top_rows(errs, scores, y, data.split("test")["_row"].to_numpy(), spec)
        if spec.kind == "image" and split == "test":
            from kiln.tasks.anomaly.plots import worst_images

            worst_images(run, x, errs, scores, y, spec)
        data.extra.setdefault("scores", {})[split] = (scores, y)
        if fm is not None and (y == 1).any() and (y == 0).any():
            feats[split] = (baseline_features(run_model(fm, x), spec), y)
    if feats:
        xt, _ = fresh_split(data, "train", training=True)
        train = baseline_features(run_model(fm, xt), spec)
        base = baseline_scores(train, {s: f for s, (f, _) in feats.items()}, cfg.seed)
        if spec.kind == "series":
            from kiln.tasks.anomaly.data import series_windows

            base["seasonal_naive"] = {s: seasonal_naive_scores(data.rows, spec, series_windows(data.rows, spec, s)[2]) for s in feats}
        metrics["baselines"] = {s: {name: score_metrics(b[s], feats[s][1], None) for name, b in base.items()} for s in feats}
        data.extra["baseline_scores"] = base
    metrics["threshold"] = run.meta.get("threshold_rule")
    from kiln.tasks.anomaly.plots import series_plot, write_plots

    write_plots(run, data.extra.get("scores", {}), threshold)
    if spec.kind == "series" and "test" in data.extra.get("scores", {}):
        from kiln.tasks.anomaly.data import series_windows

        series_plot(run, data.rows, spec, series_windows(data.rows, spec, "test")[2], data.extra["scores"]["test"][0], threshold)
    return metrics


# --- kiln evaluate / kiln predict --------------------------------------------------------------------------
def _threshold(run, scores_val, y_val, threshold=None, rule=None) -> tuple[float | None, str]:
    if threshold is not None:
        try:
            return float(threshold), f"threshold={threshold}"
        except ValueError:  # threshold=RULE: the anomaly rules (kiln evaluate's threshold= is text for every task)
            rule = threshold
    if rule is not None:
        from kiln.tasks.anomaly.threshold import choose

        value, details = choose(scores_val(), y_val, rule)
        return value, f"rule={details['rule']}"
    return run.meta.get("threshold"), f"rule={(run.meta.get('threshold_rule') or {}).get('rule')}"


def read_file(run, path, component: str, label: str | None = None):
    """(inputs, labels or None, frame) of another file in the run's format."""
    from kiln.tasks.anomaly.data import flags, series_windows, table_inputs

    spec = run.spec
    label = label or spec.label
    if spec.kind == "table":
        from kiln.tasks.common.tabular import read_table

        frame = read_table(path, component).frame
        missing = [f.column for f in spec.table_spec.used if f.column not in frame.columns]
        if missing:
            raise DataError(received(component, "column", missing[0], f"the model needs it and {path} has no such column", "Add the column"))
        y = flags(frame[label], label, spec.anomaly_label, component) if label and label in frame.columns else None
        return table_inputs(frame, spec), y, frame
    if spec.kind == "image":
        from kiln.tasks.anomaly.data import image_inputs
        from kiln.tasks.anomaly.images import image_flags, list_images

        paths = [path] if isinstance(path, (str, Path)) else list(path)
        frame = pd.concat([list_images(p, component) if Path(p).is_dir() else pd.DataFrame({"path": [str(p)], "class": [""]})
                           for p in paths], ignore_index=True)
        y = image_flags(frame, spec.anomaly_label, component) if all(Path(p).is_dir() for p in paths) else None
        return image_inputs(frame, spec), y, frame[["path"]]
    from kiln.tasks.anomaly.data import read_series_frame

    frame = read_series_frame(path, spec, component)
    if label and "_label" in frame.columns:
        frame["_anomaly"] = flags(pd.Series(frame["_label"]), label, spec.anomaly_label, component)
    x, y, starts = series_windows(frame, spec)
    times = frame["time"].astype(str).to_numpy()
    out = pd.DataFrame({"start": times[starts], "end": times[starts + spec.window - 1]})
    return x, (y if "_anomaly" in frame.columns else None), out


def evaluate_file(run, data: str | None, split: str, out: str | None, threshold=None, rule=None, label=None, **_) -> dict:
    spec = run.spec
    if data:
        x, y, _ = read_file(run, data, "evaluate", label)
        if y is None:
            raise DataError(received("evaluate", "label", label or spec.label, f"{data} has no label column to score against",
                                     "Pass label=COLUMN marking anomalies (1/0, or anomaly_label=)"))
        if not (y == 1).any() or not (y == 0).any():
            what = "no anomalies" if not (y == 1).any() else "no normal rows"
            raise DataError(received("evaluate", "data", data, f"it holds {what}; ROC and PR need both",
                                     "Evaluate on a file with normal and anomalous rows"))
    else:
        x, y, _ = run_split(run, split)
    model = run.model

    def val_scores():
        xv, _, _ = run_split(run, "val")
        return reduce(errors(model, xv), spec)

    if threshold is not None and rule is None:
        try:
            float(threshold)
        except ValueError:
            threshold, rule = None, threshold
    t, how = _threshold(run, val_scores, run_split(run, "val")[1] if rule else None, threshold, rule)
    result = score_metrics(reduce(errors(model, x), spec), y if y is not None else np.zeros(_count(x), np.int64), t)
    if threshold is not None or rule is not None:
        result["threshold_from"] = how  # another threshold than the run's, tried here
    if out:
        write_json(out, result)
    return result


def column_shares(errs: np.ndarray, spec) -> dict[str, np.ndarray]:
    """Each table column's share of a row's error (its one-hot, date parts and missing indicator together)."""
    t = spec.table_spec
    groups, start = [], 0
    for f in t.used:
        if f.encoding in ("numeric", "datetime"):
            width = 1 if f.encoding == "numeric" else 8
            groups.append((f.column, list(range(start, start + width))))
            start += width
    for f in t.used:
        if f.encoding == "category":
            groups.append((f.column, list(range(start, start + len(f.vocabulary) + 1))))
            start += len(f.vocabulary) + 1
    extra = dict(groups)
    for f in t.used:
        if f.encoding != "category" and f.missing_indicator:
            extra[f.column] = extra[f.column] + [start]
            start += 1
    total = np.maximum(errs.sum(-1), 1e-12)
    return {c: errs[:, idx].sum(-1) / total for c, idx in extra.items()} if start == errs.shape[1] else {}


def top_rows(errs: np.ndarray, scores: np.ndarray, y: np.ndarray, rows: np.ndarray, spec, k: int = 10) -> list[dict]:
    """The k highest-scoring rows: their row in the file, score, label and the three columns with the largest share."""
    top = np.argsort(-scores)[:k]
    shares = column_shares(errs[top], spec)
    out = []
    for j, i in enumerate(top):
        cols = sorted(((c, float(v[j])) for c, v in shares.items()), key=lambda cv: -cv[1])[:3]
        out.append({"row": int(rows[i]), "score": float(scores[i]), "anomaly": int(y[i]), "columns": [[c, round(v, 4)] for c, v in cols]})
    return out


def predict_file(run, inputs, out: str | None) -> list[dict]:
    """Table: every column kept, plus score, is_anomaly and share_<column>; series: one row per window (start, end)."""
    spec = run.spec
    if isinstance(inputs, pd.DataFrame) and spec.kind == "table":
        from kiln.tasks.anomaly.data import table_inputs

        frame = inputs.astype(object).where(inputs.notna(), "").astype(str)
        x = table_inputs(frame, spec)
    else:
        paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        if spec.kind == "image":
            paths = [paths]  # image files and folders, all together
        elif len(paths) != 1:
            raise DataError(received("predict", "inputs", " ".join(map(str, paths)), "an anomaly run scores one file at a time",
                                     "Example: kiln predict runs/anomaly rows.csv out=scores.csv"))
        x, _, frame = read_file(run, paths[0], "predict")
    errs = errors(run.model, x)
    scores = reduce(errs, spec)
    t = run.meta.get("threshold")
    result = frame.copy()
    result["score"] = scores
    result["is_anomaly"] = (scores > t).astype(int) if t is not None else 0
    if spec.kind == "table" and len(errs):
        for c, share in column_shares(errs, spec).items():
            result[f"share_{c}"] = np.round(share, 4)
    if out:
        write_csv(result, out)
        print(f"kiln: wrote {len(result)} scores to {out} ({int(result['is_anomaly'].sum())} above the threshold {t:.4g})", flush=True)
        return []
    return result.to_dict(orient="records")


__all__ = ["baseline_scores", "column_shares", "errors", "evaluate_file", "evaluate_fresh", "predict_file", "reduce", "score_metrics"]
