"""Training, evaluation and prediction end to end, through the CLI and the Python API."""

import csv
import json

import numpy as np
import pytest
from sklearn import metrics as skm

import kiln
from kiln.config.schema import TrainConfig
from kiln.errors import KilnError
from kiln.evaluate.metrics import classification_metrics
from kiln.train.optim import build_optimizer, build_schedule
from kiln.train.trainer import class_weights

SPLIT_KEYS = {"accuracy", "top_k_accuracy", "macro_f1", "weighted_f1", "roc_auc", "per_class", "confusion_matrix", "classes"}


def test_run_folder_contents_and_metrics(tiny_run):
    p = tiny_run.path
    for name in ("config.yaml", "run.json", "splits.csv", "model.keras", "history.csv", "metrics.json",
                 "plots/loss.png", "plots/accuracy.png", "plots/confusion_test.png", "checkpoints/best.keras"):
        assert (p / name).exists(), name
    metrics = json.loads((p / "metrics.json").read_text())
    assert set(metrics) == {"val", "test"}
    assert SPLIT_KEYS <= set(metrics["test"])
    assert metrics["test"]["accuracy"] >= 0.9
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 12
    history = tiny_run.history
    assert {"loss", "val_loss", "accuracy", "lr", "top_k_accuracy"} <= set(history.columns)
    assert len(history) == 12
    assert kiln.load_run(p).config.train.epochs == 12  # resolved config saved and reloadable


def test_api_evaluate_and_predict(tiny_run, shapes_dir, tmp_path):
    run = kiln.load_run(tiny_run.path)
    m = run.evaluate(split="val", out=str(tmp_path / "val.json"))
    assert json.loads((tmp_path / "val.json").read_text())["accuracy"] == m["accuracy"]
    other = run.evaluate(data=str(shapes_dir))
    assert other["n"] == 120 and other["accuracy"] >= 0.9
    preds = run.predict([str(shapes_dir / "class_b")], top_k=2, out=str(tmp_path / "p.csv"))
    assert len(preds) == 40 and set(preds[0]) == {"path", "label", "score", "top_k"}
    assert len(preds[0]["top_k"]) == 2 and preds[0]["top_k"][0] == [preds[0]["label"], preds[0]["score"]]
    assert sum(p["label"] == "class_b" for p in preds) >= 36
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 40 and {"p_class_a", "p_class_b", "p_class_c"} <= set(rows[0])


def test_cli_train_evaluate_predict(shapes_dir, tmp_path, capsys):
    """Through `kiln.cli.main`, the console script's whole body, in this process: a `kiln` subprocess
    would only add a TensorFlow import per command (tests/spine/test_quiet.py runs the real script)."""
    from kiln.cli import main

    run_dir = tmp_path / "cli_run"
    assert main(["train", f"data={shapes_dir}", f"run_dir={run_dir}", "epochs=3", "model=linear",
                 "train.tensorboard=false", "verbose=0", "image_size=16", "class_weight=balanced",
                 "optimizer=sgd", "lr=0.01", "schedule=step", "label_smoothing=0.1"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and str(run_dir) in out
    assert main(["evaluate", str(run_dir), "split=val", f"out={tmp_path / 'e.json'}"]) == 0
    assert SPLIT_KEYS <= set(json.loads((tmp_path / "e.json").read_text()))
    img = sorted((shapes_dir / "class_a").iterdir())[0]
    capsys.readouterr()
    assert main(["predict", str(run_dir), str(img), "top_k=3"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["path"] == str(img) and len(row["top_k"]) == 3
    # A finished run is never overwritten.
    assert main(["train", f"data={shapes_dir}", f"run_dir={run_dir}", "epochs=1"]) == 2
    assert "already holds a finished run" in capsys.readouterr().err


def test_cli_user_mistakes_exit_2(tmp_path, capsys):
    """In this process (see above); an exception escaping `main` would fail the test, as a traceback would."""
    from kiln.cli import main

    cases = [
        (["train", f"data={tmp_path / 'nope'}"], "data received data="),
        (["evaluate", str(tmp_path)], "run received path="),
        (["predict"], "predict received arguments=<none>"),
        (["evaluate", str(tmp_path), "outt=x"], "evaluate received unknown key outt"),
    ]
    for cmd, message in cases:
        assert main(cmd) == 2, cmd
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (cmd, err)


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), 200)
    y = np.where(rng.random(200) < 0.6, probs.argmax(1), rng.integers(0, 4, 200))
    m = classification_metrics(y, probs, list("abcd"), top_k=2)
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["top_k_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=2))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert m["per_class"]["c"]["support"] == int((y == 2).sum())


def test_schedules_and_optimizers():
    cfg = TrainConfig(lr=0.1, schedule="cosine", warmup_epochs=1, epochs=10)
    s = build_schedule(cfg, steps_per_epoch=10)
    assert float(s(0)) == pytest.approx(0.0) and float(s(10)) == pytest.approx(0.1) and float(s(100)) < 1e-6
    step = build_schedule(TrainConfig(lr=0.1, schedule="step", step_epochs=2, decay_rate=0.5), 10)
    assert float(step(19)) == pytest.approx(0.1) and float(step(20)) == pytest.approx(0.05)
    for name in ("sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam"):
        opt = build_optimizer(TrainConfig(optimizer=name, nesterov=True), 5)
        assert type(opt).__name__.lower() == name
    assert build_optimizer(TrainConfig(optimizer="sgd", nesterov=True, schedule="constant"), 5).nesterov


def test_balanced_class_weights():
    w = class_weights(np.array([0] * 30 + [1] * 10), 2)
    assert w == pytest.approx({0: 40 / 60, 1: 40 / 20})


def test_load_run_refuses_non_run(tmp_path):
    with pytest.raises(KilnError, match="not a finished Kiln run folder"):
        kiln.load_run(tmp_path)


def test_same_seed_same_run(shapes_dir, tmp_path):
    """Two runs with the same seed on cached (small) data train identically; another seed does not."""
    def history(seed, name):
        run = kiln.train(data=str(shapes_dir), run_dir=str(tmp_path / name), epochs=3, seed=seed, image_size=16,
                         train={"verbose": 0, "tensorboard": False}, model={"filters": [8], "units": [16]},
                         evaluate={"report": False})
        return run.history[["loss", "val_loss", "accuracy"]].to_numpy()

    first = history(1, "a")
    np.testing.assert_array_equal(history(1, "b"), first)
    assert not np.array_equal(history(2, "c"), first)
