"""`kiln demo`: the two-minute tour, end to end, on scikit-learn's real digits."""

import json
import subprocess
import time

import pytest

from conftest import KILN


def test_demo_end_to_end(tmp_path):
    run_dir = tmp_path / "demo"
    started = time.time()
    out = subprocess.run([KILN, "demo", f"run_dir={run_dir}", "verbose=0"], capture_output=True, text=True, timeout=900)
    elapsed = time.time() - started
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(list((run_dir / "data").rglob("*.png"))) == 1797
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.97
    assert metrics["test"]["n"] == 180
    assert "kiln demo: test accuracy" in out.stdout
    for name in ("config.yaml", "splits.csv", "model.keras", "history.csv", "tensorboard", "plots", "predictions.csv",
                 "audit.json", "audit.html", "report.html", "exports/tflite-int8/export.json"):
        assert (run_dir / name).exists(), name
    audit = json.loads((run_dir / "audit.json").read_text())
    assert audit["files"] == 1797 and "too_small" not in audit["kinds"]
    exported = json.loads((run_dir / "exports/tflite-int8/export.json").read_text())
    assert exported["format"] == "tflite" and exported["quantize"] == "int8"
    # kiln export keeps only an export that passed its own gate, so the demo's holds min_agreement (0.99)
    assert exported["passed"] and exported["agreement"] >= exported["min_agreement"] == 0.99
    assert "tflite int8 export agrees with the Keras model" in out.stdout
    shown = json.loads((run_dir / "demo.json").read_text())  # the model beside its baselines on the same test images
    assert shown["test"] == metrics["test"]["accuracy"] and set(shown["baselines"]) == {"largest class", "logistic regression on pixels"}
    assert all(shown["test"] > b for b in shown["baselines"].values()) and "NOT beaten" not in out.stdout
    assert json.loads((run_dir / "exports/onnx/export.json").read_text())["passed"]  # train.export_on_finish=onnx
    assert "kiln: predicted 3 image(s) (onnxruntime, exports/onnx)" in out.stderr  # the predictions skipped TensorFlow
    predictions = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [p["label"] for p in predictions] == ["0", "3", "7"]
    print(f"demo took {elapsed:.0f}s")


@pytest.mark.parametrize("task, metric", [("table", "accuracy"), ("series", "mase"), ("text", "accuracy")])
def test_each_task_has_a_short_demo_on_shipped_data(task, metric, tmp_path, capsys):
    """`kiln demo task=NAME`: real data from a dependency, audited, trained, beside its baselines, exported
    (ONNX, verified) and predicted through that export."""
    from kiln.cli import main

    run_dir = tmp_path / task
    assert main(["demo", f"task={task}", f"run_dir={run_dir}", "verbose=0"]) in (0, None)
    out = capsys.readouterr()
    shown = json.loads((run_dir / "demo.json").read_text())
    assert shown["task"] == task and shown["metric"] == metric and shown["baselines"]
    sign = 1 if shown["higher_is_better"] else -1
    margins = [sign * (shown["test"] - b) for b in shown["baselines"].values()]
    assert min(margins) >= 0 and max(margins) > 0, shown  # no baseline does better, and the model beats at least one
    assert "NOT beaten" not in out.out
    exported = json.loads((run_dir / "exports" / "onnx" / "export.json").read_text())
    assert exported["passed"] and exported["task"] == task
    assert "(onnxruntime, exports/onnx)" in out.err and (run_dir / "predictions.csv").is_file()
    assert (run_dir / "audit.json").is_file() and (run_dir / "report.html").is_file()
