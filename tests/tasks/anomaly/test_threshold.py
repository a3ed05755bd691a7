"""Threshold rules on val scores: what each promises holds on the scores it was placed on, labels are needed only
where a rule says so, and a rule the data cannot support says what was used instead."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from kiln.errors import KilnError
from kiln.tasks.anomaly.threshold import choose, parse_rule


def _scores(n=2000, bad=100, seed=0):
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0, 1, n), rng.normal(4, 1, bad)], np.r_[np.zeros(n, int), np.ones(bad, int)]


@pytest.mark.parametrize("rule,fpr", [("q0.99", 0.01), ("fpr<=0.05", 0.05), ("q0.9", 0.1)])
def test_quantile_rules_keep_their_false_positive_promise(rule, fpr):
    s, y = _scores()
    value, d = choose(s, y, rule)
    assert abs(np.mean(s[y == 0] > value) - fpr) <= 0.001 and abs(d["fpr"] - fpr) <= 0.001
    assert "normal val rows" in d["meaning"] and d["split"] == "val"


def test_max_f1_beats_every_other_cut_and_recall_rule_reaches_its_recall():
    s, y = _scores()
    value, d = choose(s, y, "max_f1")
    f1 = lambda t: (lambda p, r: 2 * p * r / (p + r))(((s > t) & (y == 1)).sum() / max((s > t).sum(), 1), ((s > t) & (y == 1)).sum() / y.sum())  # noqa: E731
    assert d["f1"] == pytest.approx(f1(value)) and all(f1(t) <= d["f1"] + 1e-12 for t in np.linspace(1, 4, 61))
    value, d = choose(s, y, "recall>=0.9")
    assert d["recall"] >= 0.9 and np.mean(s[y == 1] > value + 1e-9) < 0.9 + 1 / y.sum() + 1e-9


def test_auto_is_max_f1_with_labels_and_q99_without():
    s, y = _scores()
    assert choose(s, y, "auto")[1]["rule"] == "max_f1"
    assert choose(s[y == 0], None, "auto")[1]["rule"] == "q0.99"


def test_rules_val_cannot_support_say_what_was_used(caplog):
    s, y = _scores(n=40, bad=0)
    with caplog.at_level(logging.WARNING, "kiln.anomaly"):
        value, d = choose(s, y, "max_f1")
        assert d["rule"] == "q0.99" and "needs labelled anomalies" in caplog.text
        assert value == s.max() and "too few rows" in d["meaning"]


@pytest.mark.parametrize("rule", ["q1.5", "fpr>=0.1", "median", -1, True])
def test_bad_rules_are_one_line(rule):
    with pytest.raises(KilnError, match=r"anomaly received rule=.*Use rule=q0.99"):
        parse_rule(rule)
    assert parse_rule("mean+2.5std") == ("mean_std", 2.5) and parse_rule("mad") == ("mad", None)
