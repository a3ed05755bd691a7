"""Text metrics for a run (val/test as for images, the TF-IDF + logistic regression baseline beside them),
`kiln evaluate` on another labelled source, and `kiln predict` of strings, .txt files or a CSV column."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.errors import DataError, received
from kiln.io import atomic_path, read_csv

log = logging.getLogger("kiln.text")


def split_rows(run, name: str | None = None) -> pd.DataFrame:
    """The run's texts with label, split and class index, from its splits.csv."""
    rows = read_csv(run.path / "splits.csv", ("path", "label", "split", "text"), "a Kiln text splits.csv",
                    fix="Train the run again", dtype=str, keep_default_na=False)
    index = {c: i for i, c in enumerate(run.classes)}
    rows["y"] = rows["label"].map(index).fillna(-1).astype(int)
    return rows if name is None else rows[rows["split"] == name].reset_index(drop=True)


def probabilities(run, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """(N, K) class probabilities of the run's Keras model for raw strings."""
    from kiln.export.keras import KerasPredictor
    from kiln.export.parity import predict_all

    if not texts:
        return np.zeros((0, len(run.classes)), np.float32)
    cache = run.__dict__.setdefault("_text_predictor", {})
    if "p" not in cache:
        cache["p"] = KerasPredictor(run.model, run.task.signature(run))
    return predict_all(cache["p"], np.asarray(texts, dtype=object), batch_size)


def _metrics(y, probs, classes, top_k, threshold):
    from kiln.evaluate.metrics import classification_metrics

    return classification_metrics(y, probs, classes, top_k, threshold=threshold if len(classes) == 2 else None)


def fit_baseline(train: pd.DataFrame, sets: dict, classes: list[str], top_k: int, seed: int, ngrams: int = 2) -> dict:
    """scikit-learn TF-IDF (1-2 grams, sublinear tf) + LogisticRegression on the same split: {split: metrics}."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    started = time.time()
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, max(1, ngrams)), sublinear_tf=True, min_df=1, max_features=200_000),
                         LogisticRegression(max_iter=2000, C=10.0, random_state=seed))
    pipe.fit(train["text"].tolist(), train["y"].to_numpy())
    fit_seconds = time.time() - started
    out = {}
    for split, rows in sets.items():
        probs = np.zeros((len(rows), len(classes)))
        probs[:, pipe.classes_] = pipe.predict_proba(rows["text"].tolist())
        m = _metrics(rows["y"].to_numpy(), probs, classes, top_k, None)
        out[split] = {"tfidf_logreg": {**{k: v for k, v in m.items() if k not in ("per_class", "confusion_matrix", "classes")},
                                       "fit_seconds": round(fit_seconds, 3)}}
    return out


def evaluate_fresh(task, run, data, cfg) -> dict:
    """metrics.json of a new run: {"val", "test", "baselines": {split: {"tfidf_logreg": ...}}, "text": token statistics}."""
    from kiln.evaluate.plots import plot_confusion
    from kiln.evaluate.threshold import run_threshold

    run.__dict__.pop("meta", None)
    threshold = run_threshold(run.meta) if len(data.classes) == 2 else None
    top_k = min(cfg.train.top_k, len(data.classes))
    metrics, sets = {}, {}
    for split in ("val", "test"):
        rows = data.split(split)
        if len(rows):
            probs = data.outputs.get(split)
            if probs is None:
                probs = task.predict_outputs(run, rows["text"].tolist())
            metrics[split] = _metrics(rows["y"].to_numpy(), probs, data.classes, top_k, threshold)
            sets[split] = rows
    for split, m in list(metrics.items()):
        plot_confusion(m["confusion_matrix"], data.classes, run.path / "plots" / f"confusion_{split}.png", f"{split} confusion matrix")
    if cfg.text.baseline and sets:
        metrics["baselines"] = fit_baseline(data.split("train"), sets, data.classes, top_k, cfg.seed)
        for split in sets:
            base, ours = metrics["baselines"][split]["tfidf_logreg"]["accuracy"], metrics[split]["accuracy"]
            log.info("evaluate: %s accuracy %.4f (%s) vs %.4f (TF-IDF + logistic regression)", split, ours, data.spec.model, base)
    metrics["text"] = data.spec.stats
    return metrics


def evaluate_run(task, run, data=None, split="test", out=None, top_k: int = 5, threshold: float | None = None, **_) -> dict:
    """Metrics of one split of the run's texts, or of every text of another labelled source."""
    from kiln.evaluate.threshold import run_threshold
    from kiln.io import write_json
    from kiln.tasks.text.source import read_texts

    spec = task.load_spec(run.meta)
    if data is None:
        rows = split_rows(run, split)
        if not len(rows):
            raise DataError(received("evaluate", "split", split, "the run has no texts in that split", "Use split=test, val or train"))
    else:
        rows = read_texts(data, spec.text_column, spec.label_column, "split", spec.max_chars, "evaluate")
        unknown = sorted(set(rows["label"]) - set(run.classes))
        if unknown:
            raise DataError(received("evaluate", "label", unknown[0], "the run was not trained on this class", f"Classes: {', '.join(run.classes)}"))
        rows["y"] = rows["label"].map({c: i for i, c in enumerate(run.classes)}).astype(int)
    t = threshold if threshold is not None else run_threshold(run.meta)
    result = _metrics(rows["y"].to_numpy(), task.predict_outputs(run, rows["text"].tolist()), run.classes, top_k, t)
    if out:
        write_json(out, result)
    return result


def read_inputs(inputs, spec, component: str = "predict") -> list[tuple[str, str]]:
    """(source, text) per input: a .txt file is one text, a CSV / TSV / JSON Lines file one text per row of the run's
    text column, a folder its .txt files, anything else is the text itself."""
    from kiln.tasks.text.source import TABLE_SUFFIXES, decode, read_texts

    out = []
    for item in inputs:
        s = str(item)
        p = Path(s).expanduser()
        looks_like_path = len(s) < 4096 and "\n" not in s
        if looks_like_path and p.is_file() and p.suffix.lower() in TABLE_SUFFIXES:
            rows = read_texts(p, spec.text_column, None, "split", spec.max_chars, component, need_label=False)
            out.extend(zip(rows["where"], rows["text"]))
        elif looks_like_path and p.is_dir():
            out.extend((str(f), decode(f.read_bytes())[0][: spec.max_chars]) for f in sorted(p.rglob("*.txt")))
        elif looks_like_path and p.is_file():
            out.append((str(p), decode(p.read_bytes())[0][: spec.max_chars]))
        elif looks_like_path and _path_like(s):  # one word with a slash or a file suffix: a file the user meant, not a text
            raise DataError(received(component, "input", s, "no such file or folder, and one word with a path's shape is not "
                                     "taken as the text to classify", "Check the path; to classify a phrase, quote it with spaces"))
        else:
            out.append(("<text>", s[: spec.max_chars]))
    return out


def _path_like(s: str) -> bool:
    """No whitespace, and a folder separator or a file suffix (.txt, .csv, ...): what a path looks like, not a text."""
    from kiln.tasks.text.source import TABLE_SUFFIXES

    if not s or any(c.isspace() for c in s):
        return False
    return "/" in s or "\\" in s or Path(s).suffix.lower() in {*TABLE_SUFFIXES, ".txt", ".md", ".json"}


def predict_inputs(task, run, inputs, out=None, top_k: int = 5, runtime: str = "auto", **_) -> list[dict]:
    """One answer per text: source, label, score, top_k [[label, score], ...], the start of the text.
    `runtime`: auto, keras or onnx (kiln/export/runtime.py)."""
    from kiln.evaluate.threshold import apply_threshold, run_threshold
    from kiln.export.runtime import announce, export_model

    model = export_model(run, runtime)  # a wrong runtime= is named before any text is read

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    spec = task.load_spec(run.meta)
    items = read_inputs(inputs, spec)
    if not items:
        raise DataError(received("predict", "inputs", " ".join(map(str, inputs))[:80], "no text was found in them",
                                 'Pass strings, .txt files or a CSV with the run\'s text column, e.g. kiln predict RUN "some text"'))
    probs = task.predict_outputs(run, [t for _, t in items], model=model)
    announce(run, model, len(probs), "text(s)")
    t = run_threshold(run.meta) if len(run.classes) == 2 else None
    picks = apply_threshold(probs, t)
    k = min(top_k, len(run.classes))
    answers = []
    for (where, text), p, i in zip(items, probs, picks):
        order = np.argsort(-p)[:k]
        answers.append({"source": where, "label": run.classes[int(i)], "score": float(p[int(i)]),
                        "top_k": [[run.classes[j], float(p[j])] for j in order], "text": text[:80],
                        **({"threshold": 0.5 if t is None else t} if len(run.classes) == 2 else {})})  # the cut the label came from
    if out:
        frame = pd.DataFrame([{k: v for k, v in a.items() if k != "top_k"} for a in answers])
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, index=False)
    return answers


__all__ = ["evaluate_fresh", "evaluate_run", "fit_baseline", "predict_inputs", "probabilities", "read_inputs", "split_rows"]
