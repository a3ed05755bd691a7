"""`auto` values: the rules, their one-line record, and a defaults run that refits on train+val."""

import json

import pytest

import kiln
from kiln.config import load_config
from kiln.tasks.image.data.prepare import ImageSpec
from kiln.tasks.image.auto import auto_epochs, auto_filters, auto_patience, resolve
from kiln.train.phases import best_epoch_count, smoothed


def _resolve(n_train=700, n_val=90, side=32, family="simple", pretrained=False, model="cnn", **overrides):
    cfg = load_config(overrides=overrides)
    return resolve(cfg, spec=ImageSpec(side, side, 1, "stretch"), n_train=n_train, n_val=n_val, model_name=model,
                   family=family, pretrained=pretrained)


def test_rules_follow_image_side_and_dataset_size():
    assert auto_filters(8) == auto_filters(16) == [32, 64]
    assert auto_filters(32) == [32, 64, 128]
    assert auto_filters(64) == [32, 64, 128, 256]
    assert auto_filters(128) == [32, 64, 128, 256, 256]
    assert [auto_epochs(n) for n in (50, 300, 718, 1500, 100_000)] == [100, 100, 42, 20, 20]
    assert auto_patience(20) == 10 and auto_patience(100) == 50


def test_defaults_decide_recipe_and_say_why():
    cfg, decisions = _resolve()
    by_key = {d.key: d for d in decisions}
    assert set(by_key) == {"image.filters", "image.convs_per_block", "train.epochs", "train.patience", "image.augment.translation",
                           "image.augment.zoom", "image.augment.rotation", "image.augment.hue", "image.augment.saturation", "train.refit"}
    assert (cfg.image.filters, cfg.image.convs_per_block, cfg.train.epochs, cfg.train.patience) == ([32, 64, 128], 2, 43, 21)
    assert cfg.train.refit is True and cfg.image.augment.translation == 0.08 and cfg.image.augment.flip == "none"
    assert cfg.image.augment.hue == cfg.image.augment.saturation == 0.0  # grey images: no colour to change
    assert by_key["image.augment.hue"].why == "the images are grey"
    for d in decisions:
        line = d.line()
        assert line.startswith(f"auto: {d.key}=") and "\n" not in line and line.endswith(")"), line
    assert by_key["train.refit"].line() == "auto: train.refit=true (val (90 images) chooses the epoch, then trains too)"


def test_given_values_are_kept_and_change_what_auto_decides():
    cfg, decisions = _resolve(**{"epochs": 8, "image.filters": [16, 32], "image.augment.translation": 0.2})
    keys = {d.key for d in decisions}
    assert "train.epochs" not in keys and "image.filters" not in keys and "image.augment.translation" not in keys
    assert (cfg.train.epochs, cfg.image.filters, cfg.image.augment.translation) == (8, [16, 32], 0.2)
    assert cfg.image.convs_per_block == 1  # the blocks the user described
    assert cfg.train.refit is False and cfg.image.augment.zoom == 0.0  # a run of a given length trains as asked
    assert cfg.train.patience == 10
    backbone, _ = _resolve(family="keras_applications", pretrained=True, model="mobilenet_v2")
    assert backbone.train.refit is False and backbone.image.augment.rotation == 0.0
    no_val, _ = _resolve(n_val=0)
    assert no_val.train.refit is False


def test_refit_run_trains_on_train_and_val_and_records_why(shapes_dir, tmp_path, capsys):
    """A short run with the refit on (a full defaults run takes minutes: bench/defaults.py measures those):
    decisions printed once each and kept in run.json; the final model trained on train+val for the epochs
    val chose; val metrics from the model val chose."""
    run = kiln.train(data=str(shapes_dir), run_dir=str(tmp_path / "auto"), image_size=16, seed=3, epochs=4, refit=True,
                     train={"verbose": 0, "tensorboard": False}, evaluate={"report": False})
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("kiln: auto: ")]
    meta = json.loads((run.path / "run.json").read_text())
    assert len(printed) == len(meta["auto"]) and len(set(printed)) == len(printed)
    assert meta["auto"]["image.filters"] == {"value": [32, 64], "why": "2 blocks halve 16 px to 4 px"}
    assert "train.refit" not in meta["auto"] and "train.epochs" not in meta["auto"]  # given, not decided
    history = run.history
    phase1, refit = history[history["phase"] == 1], history[history["phase"] == 2]
    chosen = int(smoothed(phase1["val_loss"].to_numpy()).argmin()) + 1
    assert len(phase1) == 4
    assert meta["refit"] == {"epochs": chosen, "examples": 108, "val_metrics": "from the model val chose, before the refit"}
    assert len(refit) == chosen and refit["val_loss"].isna().all() and refit["loss"].notna().all()
    assert run.config.image.filters == [32, 64] and run.config.image.convs_per_block == 2  # Run.config: what auto chose
    import yaml

    assert yaml.safe_load((run.path / "config.yaml").read_text())["image"]["filters"] == [32, 64]  # config.yaml: what auto resolved
    assert set(run.metrics) == {"val", "test"} and not (run.path / "state").exists()


def test_refit_epochs_come_from_the_smoothed_val_curve(tmp_path):
    """A one-epoch dip of a noisy val curve (epoch 3) loses to the broad valley around epoch 11: the refit
    trains to where val is low on average, not where one lucky epoch was."""
    import pandas as pd

    loss = [2.0, 1.6, 1.0, 1.7, 1.5, 1.4, 1.3, 1.2, 1.15, 1.1, 1.05, 1.1, 1.15, 1.2, 1.6, 1.8]
    acc = [1 - v / 3 for v in loss]
    pd.DataFrame({"epoch": range(16), "phase": 1, "val_loss": loss, "val_accuracy": acc}).to_csv(tmp_path / "history.csv", index=False)
    assert int(pd.Series(loss).argmin()) + 1 == 3  # what the raw minimum would pick
    assert best_epoch_count(tmp_path, "val_loss", 1, fallback=0) == 11
    assert best_epoch_count(tmp_path, "val_accuracy", 1, fallback=0, mode="max") == 11
    assert best_epoch_count(tmp_path, "val_auc", 1, fallback=7) == 7  # not in the history: the fallback
    assert smoothed([1.0, 3.0, 2.0], window=3).tolist() == [2.0, 2.0, 2.5]  # shorter windows at the ends


def _colour_rows(folder, colour_is_class: bool, n=100, size=16):
    """Two classes, a bar across (0) or down (1) over noise; the bar's colour is the class's own
    (red / blue) or random per image."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for c in (0, 1):
        for i in range(n):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            colour = ((230, 30, 30), (30, 30, 230))[c] if colour_is_class else rng.integers(0, 256, 3)
            if c == 0:
                img[size // 2 - 2:size // 2 + 2, 1:-1] = colour
            else:
                img[1:-1, size // 2 - 2:size // 2 + 2] = colour
            path = folder / f"{c}_{i}.png"
            Image.fromarray(img).save(path)
            rows.append({"path": str(path), "y": c})
    return pd.DataFrame(rows)


def test_colour_changes_only_where_hue_does_not_tell_the_class(tmp_path):
    from kiln.tasks.image.auto import colour_signal, colour_tells_class

    (tmp_path / "coded").mkdir()
    (tmp_path / "random").mkdir()
    coded, random = _colour_rows(tmp_path / "coded", True), _colour_rows(tmp_path / "random", False)
    acc, majority = colour_signal(coded["path"], coded["y"])
    assert acc > 0.95 and majority == 0.5 and colour_tells_class(acc, majority, len(coded))
    assert not colour_tells_class(*colour_signal(random["path"], random["y"]), len(random))
    assert not colour_tells_class(0.53, 0.5333, 300) and colour_tells_class(0.65, 0.5, 300)

    def decide(rows, **overrides):
        cfg = load_config(overrides=overrides)
        return resolve(cfg, spec=ImageSpec(16, 16, 3, "stretch"), n_train=len(rows), n_val=10, model_name="cnn",
                       family="simple", pretrained=False, rows=rows)

    cfg, decisions = decide(coded)
    why = {d.key: d.why for d in decisions}
    assert cfg.image.augment.hue == cfg.image.augment.saturation == 0.0 and why["image.augment.hue"].startswith("colour tells the classes apart")
    cfg, decisions = decide(random)
    assert (cfg.image.augment.hue, cfg.image.augment.saturation) == (0.5, 0.3)
    assert [d.line().split(" (")[0] for d in decisions if d.key in ("image.augment.hue", "image.augment.saturation")] == \
        ["auto: image.augment.hue=0.5", "auto: image.augment.saturation=0.3"]
    given, _ = decide(random, epochs=5)  # a run of a given length trains as asked
    assert given.image.augment.hue == 0.0
    kept, decisions = decide(random, **{"image.augment.hue": 0.1})
    assert kept.image.augment.hue == 0.1 and "image.augment.hue" not in {d.key for d in decisions}


@pytest.mark.parametrize("value", ["sometimes", -1])
def test_bad_auto_keys_are_refused(value):
    from kiln.errors import ConfigError

    with pytest.raises(ConfigError, match="refit|epochs"):
        load_config(overrides={"refit" if value == "sometimes" else "epochs": value})
