"""Search: `kiln lr-find` (exponential sweep, plot, suggested LR) and `kiln tune` (KerasTuner over the
config's tune.space, results table, best config that `kiln train --config` accepts)."""


import numpy as np
import pandas as pd
import pytest
import yaml

import kiln
from kiln.config import load_config
from kiln.errors import ConfigError
from kiln.train.lr_find import suggest
from kiln.train.tune import _oracle, parse_space

QUIET = {"train": {"verbose": 0, "tensorboard": False}, "evaluate": {"report": False}}


def test_lr_find_suggests_a_sane_lr_and_writes_its_plot(tmp_path, shapes_dir):
    result = kiln.lr_find(data=str(shapes_dir), image_size=32, out=str(tmp_path / "lrf"), steps=60, seed=1,
                          model={"filters": [16, 32], "units": [32]}, **QUIET)
    assert 3e-4 <= result["suggested_lr"] <= 5e-2, result  # Adam on this data trains well at ~1e-3..1e-2
    assert result["suggested_lr"] < result["min_loss_lr"]
    folder = tmp_path / "lrf"
    assert (folder / "lr_find.png").stat().st_size > 10_000
    table = pd.read_csv(folder / "lr_find.csv")
    assert len(table) == result["steps"] and np.all(np.diff(table["lr"]) > 0)
    assert table["lr"].iloc[0] == pytest.approx(1e-7)


def test_valley_suggestion_on_a_known_curve():
    lrs = np.logspace(-6, 0, 61)
    loss = np.where(lrs < 1e-4, 2.0, 2.0 - 0.5 * (np.log10(lrs) + 4))  # falls from 1e-4 to 1
    loss[-3:] = [3.0, 5.0, 9.0]  # diverges at the end
    suggested, lowest = suggest(lrs, loss)
    assert 1e-4 < suggested < 1e-1 and lowest == pytest.approx(lrs[-4])


def test_lr_find_options_are_checked_before_anything_runs(capsys):
    from kiln.cli import main  # the console script's body in this process

    assert main(["lr-find", "data=x", "start_lr=fast"]) == 2
    assert "lr-find received start_lr=fast; it must be a number" in capsys.readouterr().err


def test_tune_writes_results_and_a_best_config_kiln_train_accepts(tmp_path, shapes_dir):
    space = {"train.lr": {"min": 1e-3, "max": 1e-2, "sampling": "log"}, "model.filters": [[8], [16, 32]]}
    out = kiln.tune(data=str(shapes_dir), run_dir=str(tmp_path / "tune"), image_size=16, seed=2, epochs=30,
                    model={"units": [16]}, tune={"space": space, "algorithm": "random", "trials": 2, "trial_epochs": 2},
                    **QUIET)
    results = pd.read_csv(out["results"])
    assert len(results) == 2 and results["val_accuracy"].notna().all()
    assert results["val_accuracy"].iloc[0] == results["val_accuracy"].max() == out["best"]["score"]
    assert results["train.lr"].between(1e-3, 1e-2).all() and results["image.filters"].isin(["[8]", "[16, 32]"]).all()
    for run_dir in results["run_dir"]:
        assert len(pd.read_csv(f"{run_dir}/history.csv")) <= 2  # each trial is a kiln run of trial_epochs
    best = yaml.safe_load(open(out["best_config"]))
    assert best["train"]["lr"] == out["best"]["values"]["train.lr"]
    assert best["image"]["filters"] == out["best"]["values"]["image.filters"]
    assert best["train"]["epochs"] == 30 and "tune" not in best and "run_dir" not in best
    from kiln.cli import main  # the console script's body, in this process (one TensorFlow import saved)

    assert main(["train", "--config", out["best_config"], f"run_dir={tmp_path / 'best'}", "epochs=1", "verbose=0"]) == 0
    assert load_config(tmp_path / "best" / "config.yaml").train.lr == best["train"]["lr"]


def test_tune_space_is_checked_and_algorithms_build(shapes_dir):
    with pytest.raises(ConfigError, match="the search space is empty"):
        parse_space(load_config())
    with pytest.raises(ConfigError, match="run_dir.*cannot be searched"):
        parse_space(load_config(overrides={"tune.space": {"run_dir": ["a", "b"]}}))
    with pytest.raises(ConfigError, match=r"tune.space.lr=20.0; .*less than or equal to 10"):
        parse_space(load_config(overrides={"tune.space": {"lr": {"min": 0.1, "max": 20}}}))
    with pytest.raises(ConfigError, match="unknown key"):
        parse_space(load_config(overrides={"tune.space": {"learning_rat": [0.1]}}))
    dims = parse_space(load_config(overrides={"tune.space": {"batch_size": {"min": 8, "max": 64, "step": 8}, "dropout": [0.1, 0.3]}}))
    assert [(d.key, d.kind) for d in dims] == [("data.batch_size", "int"), ("model.dropout", "choice")]
    import keras_tuner as kt

    for algorithm, cls in (("random", kt.oracles.RandomSearchOracle), ("hyperband", kt.oracles.HyperbandOracle),
                           ("bayesian", kt.oracles.BayesianOptimizationOracle)):
        cfg = load_config(overrides={"tune.algorithm": algorithm, "tune.trial_epochs": 9})
        assert isinstance(_oracle(cfg, kt.HyperParameters(), kt.Objective("val_accuracy", "max")), cls)
