"""The text report as a first user reads it (issue 32): what the tokens are, counts as counts, the words that
mattered inside the snippet shown, a two-class accuracy named with its threshold."""

from __future__ import annotations

from types import SimpleNamespace

from kiln.tasks.text.report import SNIPPET, _count, _snippet, _summary


def test_snippet_shows_the_words_that_mattered():
    text = " ".join(["filler"] * 120) + " budget deficit " + " ".join(["more"] * 80)
    shown = _snippet(text, [("budget", 0.4), ("deficit", 0.2), ("filler", -0.1)])
    assert "<mark>budget</mark>" in shown and "<mark>deficit</mark>" in shown
    assert shown.startswith("…") and shown.endswith("…") and len(shown) < SNIPPET + 80
    assert _snippet("short text here", [("text", 0.3)]) == "short <mark>text</mark> here"


def test_summary_names_tokens_counts_and_threshold():
    meta = {"model": "bow", "text": {"ngrams": 2, "analyzer": "char_wb", "sequence_length": 4096, "vocabulary_size": 100,
                                     "output_mode": "tf_idf"},
            "threshold": 0.3, "threshold_rule": {"rule": "max_f1", "positive_class": "rep"}}
    test = {"accuracy": 0.7, "accuracy_at_0.5": 0.8, "threshold": 0.3, "macro_f1": 0.6, "weighted_f1": 0.6, "roc_auc": 0.9}
    metrics = {"test": test, "text": {"train_tokens_median": 3601.0}, "baselines": {"test": {"tfidf_logreg": {**test, "threshold": 0.5}}}}
    page = _summary(SimpleNamespace(meta=meta), metrics, "test")
    assert "character 2-5-grams within words" in page and "n-grams" not in page
    assert "<td>3601</td>" in page and "3601.0000" not in page
    assert "accuracy@0.3" in page and "accuracy@0.5" in page and "Decision threshold 0.3 on P(rep)" in page
    assert _count(12.5) == "12.5000" and _count(None) == ""
