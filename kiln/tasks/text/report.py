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


def _count(v) -> str:
    """A count as a whole number (a median of 3601.0 is 3601), else as _f."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else _f(v)


def _columns(m: dict) -> list[tuple[str, str]]:
    """(heading, key): a two-class run's accuracy named with its threshold, and argmax's beside it."""
    if "accuracy_at_0.5" not in m:
        return [("accuracy", "accuracy"), ("macro_f1", "macro_f1"), ("weighted_f1", "weighted_f1"), ("roc_auc", "roc_auc")]
    t = m.get("threshold", 0.5)
    at = [(f"accuracy@{t:.3g}", "accuracy")] if abs(t - 0.5) > 1e-9 else []
    return [("ROC-AUC", "roc_auc"), *at, ("accuracy@0.5", "accuracy_at_0.5"), ("macro F1", "macro_f1"), ("weighted F1", "weighted_f1")]


def _summary(run, metrics: dict, split: str) -> str:
    columns = _columns(metrics.get(split, {}))
    rows = [[f"kiln {run.meta.get('model')}"] + [_f(metrics.get(split, {}).get(k)) for _, k in columns]]
    for name, m in ((metrics.get("baselines") or {}).get(split) or {}).items():
        rows.append([name.replace("tfidf_logreg", "TF-IDF + logistic regression (scikit-learn)")]
                    + [_f(m.get(k)) if k != "accuracy" or m.get("threshold") == metrics.get(split, {}).get("threshold") else ""
                       for _, k in columns])
    stats = metrics.get("text") or {}
    spec = run.meta.get("text", {})
    n = spec.get("ngrams")
    grams = "character 2-5-grams within words" if spec.get("analyzer") == "char_wb" else f"word 1-{n}-grams" if n and n > 1 else "words"
    facts = [["sequence length (tokens)", spec.get("sequence_length")], ["tokens", grams],
             ["vocabulary", spec.get("vocabulary_size")], ["output mode", spec.get("output_mode")],
             ["median training length (tokens)", _count(stats.get("train_tokens_median"))],
             ["truncated: train", _f(stats.get("truncated_train"))], ["truncated: val", _f(stats.get("truncated_val"))],
             ["out-of-vocabulary rate on val", _f(stats.get("oov_rate_val"))]]
    rule = run.meta.get("threshold_rule")
    note = (f"<p>Decision threshold {run.meta.get('threshold') or 0.5:.4g} on P({html.escape(str(rule.get('positive_class')))}), "
            f"threshold={html.escape(str(rule.get('rule')))}; accuracy@0.5 is argmax's decision, the baseline's.</p>") if rule else ""
    return (f"<h2 id=\"text-metrics\">{html.escape(split)} metrics beside the baseline</h2>" + note
            + _table(["model"] + [h for h, _ in columns], rows) + "<h3>Tokens</h3>" + _table(["", "value"], facts))


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
    """SNIPPET characters of `text` around the first word that mattered (not always its start: a long text's words
    that mattered may all lie further on), those words marked."""
    top = {w for w, s in marks if s > 0}
    from kiln.tasks.text.tokenize import standardize

    words = text.split(" ")
    first = next((i for i, w in enumerate(words) if standardize(w) in top), 0)
    offset = sum(len(w) + 1 for w in words[:first])
    start = max(0, min(offset - SNIPPET // 3, len(text) - SNIPPET))
    start = text.rfind(" ", 0, start) + 1 if start > 0 else 0  # whole words
    shown = text[start:start + SNIPPET]
    parts = []
    for word in shown.split(" "):
        esc = html.escape(word)
        parts.append(f"<mark>{esc}</mark>" if standardize(word) in top else esc)
    return ("…" if start else "") + " ".join(parts) + ("…" if start + SNIPPET < len(text) else "")


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
