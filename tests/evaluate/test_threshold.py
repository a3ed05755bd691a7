"""Binary decision thresholds: rules against brute force, and a two-class run that stores and uses one."""

import json
import logging

import numpy as np
import pytest

from kiln.errors import ConfigError
from kiln.evaluate.threshold import apply_threshold, choose_threshold, parse_rule, run_threshold


def _confusion(y, s, t):
    p = s >= t
    tp, fp, fn = (p & (y == 1)).sum(), (p & (y == 0)).sum(), (~p & (y == 1)).sum()
    tn = (~p & (y == 0)).sum()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, fp / (fp + tn)


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.clip(0.35 * y + 0.65 * rng.random(300), 0, 1)
    return y, s, [_confusion(y, s, t) + (t,) for t in np.unique(s)]


def test_rules_match_brute_force(scores):
    y, s, table = scores
    t, d = choose_threshold(y, s, "max_f1")  # noisy scores: the best F1's gain over 0.5 is within its noise
    best, at_half = max(r[2] for r in table), _confusion(y, s, 0.5)[2]
    assert t == 0.5 and d["f1"] == pytest.approx(at_half) and f"gained {best - at_half:.4f} F1" in d["kept_argmax"]
    t, d = choose_threshold(y, s, "youden")
    assert d["recall"] - d["fpr"] == pytest.approx(max(r[1] - r[3] for r in table))
    t, d = choose_threshold(y, s, "precision>=0.9")
    best = max(r[1] for r in table if r[0] >= 0.9)
    assert d["precision"] >= 0.9 and d["recall"] == pytest.approx(best) and d["met"]
    t, d = choose_threshold(y, s, "recall>=0.95")
    best = max(r[0] for r in table if r[1] >= 0.95)
    assert d["recall"] >= 0.95 and d["precision"] == pytest.approx(best)
    # the chosen value lies between two scores, so the decisions on this split are the ones reported
    assert _confusion(y, s, t)[1] == pytest.approx(d["recall"])
    assert choose_threshold(y, s, 0.3)[0] == 0.3 and choose_threshold(y, s, "argmax")[0] == 0.5


def test_apply_and_parse():
    probs = np.array([[0.7, 0.3], [0.4, 0.6], [0.55, 0.45]])
    assert apply_threshold(probs, None).tolist() == [0, 1, 0]
    assert apply_threshold(probs, 0.4).tolist() == [0, 1, 1]
    assert apply_threshold(np.eye(3), 0.9).tolist() == [0, 1, 2]  # multi-class: argmax
    assert parse_rule("precision>=0.95") == ("precision", 0.95) and parse_rule("0.25") == ("fixed", 0.25)
    for bad in ("foo", "precision>=1.5", 1.0, "recall>0.9"):
        with pytest.raises(ConfigError, match="threshold"):
            parse_rule(bad)


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    """A two-class run whose report step is made to fail: the run must survive with a warning."""
    import kiln
    import kiln.evaluate.report as report
    from synth import make_image_folder

    root = tmp_path_factory.mktemp("binary")
    data = make_image_folder(root / "data", classes=2, per_class=40, size=16, seed=4)
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("kiln.train").addHandler(handler)

    def broken(*a, **k):
        raise RuntimeError("boom")

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(report, "write_report", broken)
            run = kiln.train(data=str(data), run_dir=str(root / "run"), model="linear", epochs=4, seed=0, image_size=16,
                             val_split=0.25, test_split=0.25, threshold="recall>=1.0",
                             train={"verbose": 0, "tensorboard": False, "lr": 3e-3})
    finally:
        logging.getLogger("kiln.train").removeHandler(handler)
    return run, messages


def test_report_failure_only_warns(binary_run):
    run, messages = binary_run
    assert (run.path / "model.keras").is_file() and (run.path / "metrics.json").is_file()
    assert not (run.path / "report.html").exists()
    assert any("report.html was not written" in m and "boom" in m for m in messages)


def test_threshold_stored_and_used(binary_run, capsys):
    run, _ = binary_run
    meta = json.loads((run.path / "run.json").read_text())
    t = meta["threshold"]
    assert isinstance(t, float) and 0 < t < 1 and run_threshold(run) == t
    rule = meta["threshold_rule"]
    assert rule["rule"] == "recall>=1.0" and rule["split"] == "val" and rule["recall"] == 1.0 and rule["met"]
    assert rule["positive_class"] == run.classes[1]

    # evaluate: the stored threshold decides, and metrics.json (written by train) agrees
    test = run.splits[run.splits["split"] == "test"]
    probs = run.predict_proba(test["path"].tolist())
    y = test["label"].map({c: i for i, c in enumerate(run.classes)}).to_numpy()
    pred = (probs[:, 1] >= t).astype(int)
    expected = [[int(((y == a) & (pred == b)).sum()) for b in (0, 1)] for a in (0, 1)]
    result = run.evaluate()
    assert result["threshold"] == t and result["confusion_matrix"] == expected
    assert run.metrics["test"]["confusion_matrix"] == expected and run.metrics["test"]["threshold"] == t
    # an explicit threshold overrides the stored one for this evaluation only
    strict = run.evaluate(threshold=0.999)
    assert strict["confusion_matrix"][0][1] + strict["confusion_matrix"][1][1] == int((probs[:, 1] >= 0.999).sum())

    # predict: labels follow the threshold, scores are the chosen class's probability
    rows = run.predict(test["path"].tolist())
    for row, p in zip(rows, probs):
        chosen = int(p[1] >= t)
        assert row["label"] == run.classes[chosen] and row["score"] == pytest.approx(float(p[chosen]), abs=1e-6)

    from kiln.cli import main

    assert main(["evaluate", str(run.path), "threshold=max_f1"]) == 2
    assert "threshold" in capsys.readouterr().err


def test_max_f1_takes_argmax_or_the_best_threshold_nearest_it():
    """A small split often has a flat F1 maximum: take 0.5 when it is on it, else the best point nearest 0.5."""
    import numpy as np

    from kiln.evaluate.threshold import choose_threshold

    y = np.array([0, 0, 0, 1, 1, 1])
    separated = np.array([0.05, 0.1, 0.2, 0.8, 0.9, 0.95])  # every threshold in (0.2, 0.8] is perfect, 0.5 too
    value, details = choose_threshold(y, np.c_[1 - separated, separated], "max_f1")
    assert value == 0.5 and details["f1"] == 1.0
    high = np.tile([0.6, 0.65, 0.7, 0.9, 0.92, 0.95], 5)  # perfect only in (0.7, 0.9]: midway, not against 0.7
    value, details = choose_threshold(np.tile(y, 5), np.c_[1 - high, high], "max_f1")
    assert value == 0.8 and details["f1"] == 1.0


def test_max_f1_keeps_argmax_unless_the_gain_beats_its_noise():
    import numpy as np

    from kiln.evaluate.threshold import choose_threshold

    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(27, int)]
    low = np.where(y == 1, rng.uniform(0.2, 0.4, len(y)), rng.uniform(0.0, 0.15, len(y)))  # argmax calls every row negative
    value, details = choose_threshold(y, np.c_[1 - low, low], "max_f1")
    assert 0.15 < value <= 0.2 and details["f1"] == 1.0 and "kept_argmax" not in details
    s = np.where(y == 1, rng.uniform(0.6, 1.0, len(y)), rng.uniform(0.0, 0.45, len(y)))
    s[[0, 1, 30]] = 0.55, 0.56, 0.54  # two negatives above 0.5 and a positive below them: ~0.58 wins 2 rows, loses 1
    value, details = choose_threshold(y, np.c_[1 - s, s], "max_f1")
    assert value == 0.5 and "kept_argmax" in details and details["fp"] == 2 and details["fn"] == 0
