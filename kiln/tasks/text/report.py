"""The text run's parts of report.html: metrics beside the TF-IDF + logistic regression baseline, token
statistics, per-class metrics, error rate by text length, and the most confident mistakes (and a few
right answers) as snippets, each with the words that mattered most (occlusion, kiln/tasks/text/explain.py)."""

from __future__ import annotations

import html

import numpy as np

from kiln.tasks.base import ReportSection

SNIPPET = 240  # characters of a text shown


def _table(head: list[str], rows: list[list]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{body}</table>"


def _f(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))


def _summary(run, metrics: dict, split: str) -> str:
    keys = ["accuracy", "macro_f1", "weighted_f1", "roc_auc"]
    rows = [[f"kiln {run.meta.get('model')}"] + [_f(metrics.get(split, {}).get(k)) for k in keys]]
    for name, m in ((metrics.get("baselines") or {}).get(split) or {}).items():
        rows.append([name.replace("tfidf_logreg", "TF-IDF + logistic regression (scikit-learn)")] + [_f(m.get(k)) for k in keys])
    stats = metrics.get("text") or {}
    spec = run.meta.get("text", {})
    facts = [["sequence length (tokens)", spec.get("sequence_length")], ["n-grams", spec.get("ngrams")],
             ["vocabulary", spec.get("vocabulary_size")], ["output mode", spec.get("output_mode")],
             ["median training length (tokens)", _f(stats.get("train_tokens_median"))],
             ["truncated: train", _f(stats.get("truncated_train"))], ["truncated: val", _f(stats.get("truncated_val"))],
             ["out-of-vocabulary rate on val", _f(stats.get("oov_rate_val"))]]
    return (f"<h2 id=\"text-metrics\">{html.escape(split)} metrics beside the baseline</h2>"
            + _table(["model"] + keys, rows) + "<h3>Tokens</h3>" + _table(["", "value"], facts))


def _per_class(m: dict) -> str:
    rows = [[c, _f(v["precision"]), _f(v["recall"]), _f(v["f1"]), v["support"]] for c, v in m.get("per_class", {}).items()]
    return "<h2 id=\"text-classes\">Per-class metrics</h2>" + _table(["class", "precision", "recall", "F1", "support"], rows)


def _lengths(rows, pred) -> str:
    from kiln.tasks.text.tokenize import words

    n = np.array([len(words(t)) for t in rows["text"]])
    wrong = pred != rows["y"].to_numpy()
    edges = np.unique(np.percentile(n, [0, 25, 50, 75, 100]).round().astype(int))
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (n >= lo) & ((n <= hi) if hi == edges[-1] else (n < hi))
        if m.any():
            out.append([f"{lo}-{hi}", int(m.sum()), _f(float(wrong[m].mean()))])
    return ("<h2 id=\"text-lengths\">Error rate by length (words)</h2>" + _table(["words", "texts", "error rate"], out))


def _snippet(text: str, marks: list[tuple[str, float]]) -> str:
    top = {w for w, s in marks if s > 0}
    from kiln.tasks.text.tokenize import standardize

    shown = text[:SNIPPET] + ("…" if len(text) > SNIPPET else "")
    parts = []
    for word in shown.split(" "):
        esc = html.escape(word)
        parts.append(f"<mark>{esc}</mark>" if standardize(word) in top else esc)
    return " ".join(parts)


def _examples(run, rows, probs, pred, explain_n: int) -> str:
    from kiln.tasks.text.explain import explain

    classes = run.classes
    conf = probs[np.arange(len(pred)), pred]
    wrong = np.flatnonzero(pred != rows["y"].to_numpy())
    right = np.flatnonzero(pred == rows["y"].to_numpy())
    worst = wrong[np.argsort(-conf[wrong])][: explain_n]
    best = right[np.argsort(-conf[right])][: max(2, explain_n // 4)]
    picks = list(worst) + list(best)
    if not picks:
        return ""
    texts = rows["text"].iloc[picks].tolist()
    marks = explain(run, texts, [int(pred[i]) for i in picks]) if explain_n else [[] for _ in picks]
    table = []
    for i, text, mk in zip(picks, texts, marks):
        kind = "mistake" if i in set(wrong) else "right"
        table.append(f"<tr><td>{kind}</td><td>{html.escape(rows['label'].iloc[i])}</td><td>{html.escape(classes[pred[i]])} "
                     f"({conf[i]:.3f})</td><td>{_snippet(text, mk)}</td><td>{html.escape(', '.join(f'{w} {s:+.2f}' for w, s in mk))}</td></tr>")
    return ("<h2 id=\"text-mistakes\">Most confident mistakes, and the words that mattered</h2>"
            "<p class='muted'>Word importance: the drop in the predicted class's probability when the word is removed "
            "(occlusion); marked words support the prediction.</p><table><tr><th></th><th>true</th><th>predicted</th>"
            "<th>text</th><th>words that mattered</th></tr>" + "".join(table) + "</table>")


def sections(task, run, split: str | None = None, explain: int | None = None, **_) -> list[ReportSection]:
    from kiln.evaluate.threshold import apply_threshold, run_threshold
    from kiln.tasks.text.evaluate import split_rows

    metrics = run.metrics
    split = split or ("test" if "test" in metrics else "val")
    out = [ReportSection("text-metrics", "metrics", _summary(run, metrics, split))]
    if split in metrics:
        out.append(ReportSection("text-classes", "classes", _per_class(metrics[split])))
    rows = split_rows(run, split)
    if not len(rows):
        return out
    probs = task.predict_outputs(run, rows["text"].tolist())
    pred = apply_threshold(probs, run_threshold(run.meta) if len(run.classes) == 2 else None)
    out.append(ReportSection("text-lengths", "lengths", _lengths(rows, pred)))
    n = explain if explain is not None else int(getattr(getattr(run.config, "text", None), "explain", 8))
    out.append(ReportSection("text-mistakes", "mistakes", _examples(run, rows, probs, pred, n)))
    return out


__all__ = ["sections"]
