"""Tables end to end through the CLI: train, evaluate, predict, audit; bad input in one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import numpy as np
import pandas as pd
import pytest

from kiln.cli import main
from kiln.tasks.table.synth import make_table


def test_classification_run(table_run, table_csv):
    m = table_run.metrics
    assert m["test"]["accuracy"] >= 0.8 and m["test"]["accuracy"] > m["baselines"]["test"]["dummy"]["accuracy"] + 0.2
    for key in ("log_loss", "brier", "pr_auc", "ece", "roc_auc", "macro_f1", "threshold"):
        assert m["test"][key] is not None, key
    assert set(m["baselines"]["test"]) == {"dummy", "linear", "hist_gradient_boosting"}
    assert set(m["importance"]) == {"age", "city", "joined", "flag"}
    assert max(m["importance"], key=lambda c: m["importance"][c]["mean"]) in ("age", "city", "joined")
    meta = table_run.meta
    assert meta["task"] == "table" and meta["classes"] == ["c0", "c1"] and "threshold" in meta
    assert {f["column"]: f["encoding"] for f in meta["table"]["features"]}["id"] == "dropped"
    splits = pd.read_csv(table_run.path / "splits.csv")
    counts = splits["split"].value_counts().to_dict()
    assert len(splits) == 600 and counts["test"] == 60 and abs(counts["val"] - 60) <= 1 and splits["row"].is_unique
    assert (table_run.path / "history.csv").is_file() and (table_run.path / "report.html").is_file()


def test_regression_run(regress_run):
    m = regress_run.metrics["test"]
    assert m["r2"] >= 0.7 and set(m) >= {"mse", "rmse", "mae", "r2", "mape", "bias"}
    assert m["r2"] > regress_run.metrics["baselines"]["test"]["dummy"]["r2"] + 0.5
    assert abs(m["bias"]) < 0.5 * m["rmse"]
    cv = regress_run.metrics["cv"]
    assert cv["folds"] == 2 and set(cv["r2"]) == {"mean", "std"} and cv["r2"]["mean"] > 0.3  # folds of ~180 training rows
    decisions = {f["column"]: f for f in regress_run.meta["table"]["features"]}
    assert decisions["id"]["encoding"] == "dropped" and decisions["id"]["reason"] == "drop= names it"


def test_predict_keeps_every_column_and_evaluate(table_run, table_csv, tmp_path, capsys):
    rows = pd.read_csv(table_csv, dtype=str, keep_default_na=False).iloc[:25]
    rows.loc[0, "city"] = "Atlantis"
    rows.loc[1, "age"] = ""
    src = tmp_path / "rows.csv"
    rows.to_csv(src, index=False)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(table_run.path), str(src), f"out={out}"]) in (0, None)
    pred = pd.read_csv(out, keep_default_na=False)
    assert list(pred.columns) == list(rows.columns) + ["prediction", "threshold", "proba_c0", "proba_c1"]  # the cut its label came from
    assert len(pred) == 25 and set(pred["prediction"]) <= {"c0", "c1"}
    np.testing.assert_allclose(pred["proba_c0"] + pred["proba_c1"], 1, atol=1e-5)
    ev = tmp_path / "ev.json"
    assert main(["evaluate", str(table_run.path), f"data={table_csv}", f"out={ev}"]) in (0, None)
    result = json.loads(ev.read_text())
    assert result["n"] == 600 and set(table_run.metrics["test"]) - {"n"} <= set(result)


def _cli(capsys, *args):
    """The CLI in-process (a subprocess would pay TensorFlow's import per case)."""
    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc or 0, out.out, out.err)


def test_bad_input_one_line_exit_2(table_csv, tmp_path, capsys):
    one = tmp_path / "one.csv"
    pd.DataFrame({"x": range(30), "y": ["a"] * 30}).to_csv(one, index=False)
    empty_y = tmp_path / "empty.csv"
    pd.DataFrame({"x": range(30), "y": [""] * 30}).to_csv(empty_y, index=False)
    text_y = tmp_path / "text.csv"
    pd.DataFrame({"x": range(30), "y": [1.5] * 29 + ["lots"]}).to_csv(text_y, index=False)
    clash = tmp_path / "clash.csv"
    pd.DataFrame({"prediction": range(30), "y": range(30)}).to_csv(clash, index=False)
    header = tmp_path / "header.csv"
    header.write_text("a,b\n")
    cases = [([f"data={table_csv}", "target=lable"], "Did you mean label"), ([f"data={one}", "target=y"], "one class"),
             ([f"data={empty_y}", "target=y"], "every value of the target is missing"),
             ([f"data={text_y}", "target=y", "task=regress"], "1 cells are text"), ([f"data={clash}", "target=y"], "clashes"),
             ([f"data={header}", "target=a"], "no data rows")]
    for args, why in cases:
        r = _cli(capsys, "train", *args, f"runs_root={tmp_path / 'runs'}")
        assert r.returncode == 2, (args, r.stderr)
        lines = [line for line in (r.stdout + r.stderr).strip().splitlines() if line.strip() and not line.startswith("kiln: ")]
        assert len(lines) == 1 and why in lines[0] and "Traceback" not in r.stderr, (args, r.stdout, r.stderr)
    assert not (tmp_path / "runs").exists()


def test_audit_cli(table_csv, tmp_path, capsys):
    out = tmp_path / "audit"
    r = _cli(capsys, "audit", str(table_csv), "target=label", f"out={out}")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "audit.json").read_text())
    kinds = {(p["kind"], p["column"]) for p in report["problems"]}
    assert {("identifier", "id"), ("constant", "note"), ("missing_values", "age"), ("dates_as_text", "joined")} <= kinds
    assert (out / "audit.html").stat().st_size > 10_000
    assert _cli(capsys, "audit", str(table_csv), "target=label", f"out={out}", "strict=true").returncode == 1


def test_export_raw_rows_with_parity(table_run, tmp_path, capsys):
    """Every format (ONNX included) takes one named input per column through kiln/export and matches the Keras
    model on the test rows, in its own runtime."""
    from kiln.export.export import format_module
    from kiln.tasks.base import Signature

    for fmt in ("keras", "savedmodel", "tflite", "onnx"):
        out = tmp_path / fmt
        assert main(["export", str(table_run.path), f"format={fmt}", f"out={out}"]) in (0, None)
        info = json.loads((out / "export.json").read_text())
        assert info["agreement"] == 1.0 and info["max_abs_diff"] < 1e-4 and info["parity_split"] == "test", (fmt, info)
        assert info["task"] == "table" and [i["name"] for i in info["inputs"]] == ["age", "city", "joined", "flag"]
        assert [i["dtype"] for i in info["inputs"]] == ["float32", "string", "float32", "float32"]
        predict = format_module(fmt).load(out, Signature.from_dict(info))
        row = {"age": np.array([[np.nan]], np.float32), "city": np.array([["Atlantis"]], dtype=object),
               "joined": np.array([[19000.0]], np.float32), "flag": np.array([[1.0]], np.float32)}
        p = predict(row)
        assert p.shape == (1, 2) and np.isfinite(p).all() and abs(p.sum() - 1) < 1e-5, fmt
    # int8 goes through the same parity gate: kept only at >= 99% agreement, else exit 1 and nothing written
    r = _cli(capsys, "export", str(table_run.path), "format=tflite", "quantize=int8", f"out={tmp_path / 'q'}")
    kept = (tmp_path / "q" / "export.json").is_file()
    assert (r.returncode == 0 and kept and json.loads((tmp_path / "q" / "export.json").read_text())["agreement"] >= 0.99) or \
        (r.returncode == 1 and not kept and "not kept" in r.stdout + r.stderr), (r.returncode, r.stdout[-500:], r.stderr[-500:])
