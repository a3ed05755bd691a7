"""What a first user trips on (issue 32), on a two-class table: every view states the same figures with the
decision threshold, config.yaml is what `auto` resolved, rules on `kiln evaluate`, inputs misread, the audit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kiln.cli import main
from kiln.tasks.table.synth import make_table


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory):
    """Two classes, a fixed threshold of 0.3 (so accuracy at it and at 0.5 differ by name), cv=2, auto batch rows."""
    from kiln.config import load_config
    from kiln.train.trainer import train

    root = tmp_path_factory.mktemp("firstuser")
    path = root / "people.csv"
    make_table(300, seed=3).to_csv(path, index=False)
    cfg = load_config(None, [f"data={path}", "target=label", f"run_dir={root / 'runs' / 'fixed'}", "epochs=4", "verbose=0",
                             "tensorboard=false", "model=linear", "threshold=0.3", "cv=2", "importance=false"])
    return train(cfg)


def test_two_class_metrics_name_their_threshold(fixed_run):
    m = fixed_run.metrics["test"]
    assert m["threshold"] == 0.3 and "accuracy_at_0.5" in m
    probs = fixed_run.task.split_outputs(fixed_run, "test")
    y, p = probs
    assert m["accuracy"] == pytest.approx(np.mean((p[:, 1] >= 0.3) == y))
    assert m["accuracy_at_0.5"] == pytest.approx(np.mean((p[:, 1] >= 0.5) == y))
    assert "top_k_accuracy" not in m  # top-2 of 2 classes is always 1.0
    labels = [label for label, _ in fixed_run.task.headline(m)]
    assert labels == ["ROC-AUC", "log loss", "accuracy@0.3", "accuracy@0.5"]
    cv = fixed_run.metrics["cv"]
    assert cv["threshold"]["mean"] == pytest.approx(0.3) and "accuracy_at_0.5" in cv and "roc_auc" in cv


def test_summary_runs_and_report_show_the_same_figures(fixed_run, capsys):
    from kiln.cli import _summary
    from kiln.evaluate.report import build_report
    from kiln.runs import run_summary

    m = fixed_run.metrics["test"]
    _summary(fixed_run)
    out = capsys.readouterr().out
    assert f"accuracy@0.3 {m['accuracy']:.4f}" in out and f"accuracy@0.5 {m['accuracy_at_0.5']:.4f}" in out
    assert "decision threshold 0.3 on P(c1)" in out and "kiln: cv 2-fold" in out
    assert "baseline dummy" in out and "accuracy@0.5" in out.split("baseline dummy")[1].splitlines()[0]
    row = run_summary(fixed_run.path)
    assert row["metrics"] == "ROC-AUC/log loss/accuracy@0.3/accuracy@0.5" and f"{m['accuracy']:.4f}" in row["test"]
    page = build_report(fixed_run)
    assert "accuracy@0.3" in page and "accuracy@0.5" in page and "Decision threshold 0.3 on P(c1)" in page
    assert "{&#x27;train&#x27;" not in page and "{'train'" not in page  # the split counts are words, not a dict
    assert "Phases shaded" not in page  # one phase: nothing is shaded


def test_config_yaml_is_the_resolved_config(fixed_run):
    import yaml

    saved = yaml.safe_load((fixed_run.path / "config.yaml").read_text())
    auto = fixed_run.meta["auto"]
    assert saved["table"]["batch_rows"] == auto["table.batch_rows"]["value"] != "auto"
    assert saved["train"]["lr"] == auto["train.lr"]["value"] == 0.01  # linear's auto lr, not the 0.001 default
    assert saved["model"]["name"] == "linear"


def test_predictions_state_the_threshold(fixed_run):
    from kiln.tasks.table.evaluate import split_rows

    rows = split_rows(fixed_run, "test").drop(columns=["split", "label"]).iloc[:5]
    answers = fixed_run.predict(rows, runtime="keras")
    assert all(a["threshold"] == 0.3 and a["prediction"] == ("c1" if a["proba_c1"] >= 0.3 else "c0") for a in answers)


def test_served_answers_state_the_threshold_and_suggest_columns(fixed_run):
    from kiln.serve.model import load_served
    from kiln.tasks.table.adapter import RowError

    adapter = fixed_run.task.adapter(load_served(fixed_run.path))
    answers = adapter.answers(np.array([[0.6, 0.4], [0.8, 0.2]], np.float32))
    assert [a["prediction"] for a in answers] == ["c1", "c0"] and all(a["threshold"] == 0.3 for a in answers)
    row = {f.column: "1" for f in adapter.spec.used}
    column = adapter.spec.used[0].column
    row[column + "x"] = row.pop(column)
    with pytest.raises(RowError, match=f"did you mean '{column}x' for '{column}'"):
        adapter.rows([row])


def test_export_figures_are_named_with_the_threshold(fixed_run):
    from kiln.export.export import table

    ref = np.array([[0.65, 0.35], [0.4, 0.6], [0.9, 0.1]])
    cand = ref + 1e-6
    figures = fixed_run.task.parity_for(fixed_run)(ref, cand, np.array([1, 1, 0]))
    assert figures["metric"] == "accuracy@0.3" and figures["score"] == 1.0  # 0.35 >= 0.3: c1 (argmax says c0)
    text = table({"format": "onnx", "quantize": "none", "keras_score": 0.5, "score": 0.5, "agreement": 1.0, "max_abs_diff": 0,
                  "keras_size_bytes": 1, "size_bytes": 1, "keras_latency_ms": 1, "latency_ms": 1, "batch_size": 2,
                  "keras_throughput": 1, "throughput": 1, "runtime": "x", "parity_n": 3, "parity_split": "test",
                  "min_agreement": 0.99, "passed": True, "forced": False, **{k: figures[k] for k in ("metric", "agreement_rule")}})
    assert "accuracy@0.3" in text and "same decision" in text and "top-1" not in text


@pytest.mark.parametrize("rule", ["argmax", "youden", "max_f1", "auto", "0.3"])
def test_evaluate_takes_every_rule(fixed_run, rule, capsys):
    assert main(["evaluate", str(fixed_run.path), f"threshold={rule}"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 < result["threshold"] < 1 and "accuracy_at_0.5" in result
    if rule == "argmax":
        assert result["threshold"] == 0.5 and result["accuracy"] == result["accuracy_at_0.5"]


def test_evaluate_bad_rule_is_one_line(fixed_run, capsys):
    assert main(["evaluate", str(fixed_run.path), "threshold=bad"]) == 2
    err = capsys.readouterr().err
    assert "received threshold=bad" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_report_finds_the_audit_beside_the_run(fixed_run, tmp_path):
    from kiln.evaluate.report import build_report

    source = fixed_run.meta["source"]["path"]
    audit = fixed_run.path.parent / "audit"
    assert main(["audit", source, "target=label", f"out={audit}"]) == 0
    page = build_report(fixed_run)
    assert 'id="table-' in page and "Data audit" in page and str(audit / "audit.json") in page
    elsewhere = tmp_path / "elsewhere"
    assert main(["audit", source, "target=label", f"out={elsewhere}"]) == 0
    assert str(elsewhere / "audit.json") in build_report(fixed_run, audit=str(elsewhere))


def test_text_in_a_table_and_a_missing_target_are_named(tmp_path, capsys):
    words = "the of and to a in nation people freedom war economy taxes jobs health care justice".split()
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"speech": [" ".join(rng.choice(words, 30)) for _ in range(80)],
                          "president": [f"p{i % 8}" for i in range(80)], "party": rng.choice(["dem", "rep"], 80)})
    path = tmp_path / "speeches.csv"
    frame.to_csv(path, index=False)
    assert main(["train", f"data={path}", "target=party", f"runs_root={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert "column speech holds free text" in err and "text=speech target=party" in err and "drop=speech" in err
    assert main(["train", f"data={path}", f"runs_root={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert "target=<none>; a table needs the column to predict" in err and "text=speech" in err and "path,label" not in err
    assert not (tmp_path / "runs").exists()
