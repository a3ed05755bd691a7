"""kiln label-issues finds deliberately flipped labels in a generated dataset."""

import json

import numpy as np
import pandas as pd
import pytest

from kiln.errors import ConfigError


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    """3 classes x 40 images, 12 of them moved into the wrong class folder; a linear model trained on them."""
    import kiln
    from synth import make_image_folder

    root = tmp_path_factory.mktemp("noisy")
    data = make_image_folder(root / "data", classes=3, per_class=40, size=24, seed=3)
    names = sorted(p.name for p in data.iterdir())
    rng = np.random.default_rng(0)
    flipped = set()
    for f in rng.choice(sorted(data.rglob("*.png")), 12, replace=False):
        dest = data / names[(names.index(f.parent.name) + 1) % 3] / f"flipped_{f.parent.name}_{f.name}"
        f.rename(dest)
        flipped.add(str(dest))
    run = kiln.train(data=str(data), run_dir=str(root / "run"), model="linear", epochs=20, seed=1, image_size=24,
                     train={"verbose": 0, "tensorboard": False, "lr": 3e-3}, evaluate={"report": False})
    splits = run.splits
    in_train = set(splits.loc[splits["split"] == "train", "path"]) & flipped
    assert len(in_train) >= 6
    return run, in_train


def _recall(table: pd.DataFrame, flipped: set) -> float:
    return len(set(table.loc[table["is_issue"], "path"]) & flipped) / len(flipped)


def test_fast_method_finds_flipped_labels(noisy_run, capsys):
    from kiln.cli import main

    run, flipped = noisy_run
    assert main(["label-issues", str(run.path), "method=fast"]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(run.path / "label_issues.csv", keep_default_na=False)
    table["is_issue"] = table["is_issue"].astype(str) == "True"
    assert len(table) == (run.splits["split"] == "train").sum()
    assert list(table.columns) == ["rank", "path", "label", "suggested", "label_quality", "p_label", "p_suggested", "is_issue"]
    assert _recall(table, flipped) >= 0.7
    issues = table[table["is_issue"]]
    assert (issues["label_quality"].diff().dropna() >= 0).all()  # lowest quality first
    assert "flipped_" in out
    report = (run.path / "report.html").read_text()
    assert 'id="label-issues"' in report and "flagged by cleanlab" in report


def test_cv_method_retrains_per_fold(noisy_run):
    from kiln.tasks.image.label_issues import find_label_issues

    run, flipped = noisy_run
    table = find_label_issues(run, method="cv", folds=3, epochs=20, report=False)
    # >= 0.7 (was 0.8: one miss out of 6-9 flipped files, which tf.data's unordered batches sometimes cause);
    # flagging at most 2x the flipped count at random would find ~20 % of them
    assert _recall(table, flipped) >= 0.7
    assert table["is_issue"].sum() <= 2 * len(flipped)  # and not by flagging everything
    info = json.loads((run.path / "label_issues.json").read_text())
    assert info["method"] == "cv" and info["folds"] == 3 and info["epochs"] == 20 and info["oos_accuracy"] > 0.7


def test_bad_options(noisy_run):
    import kiln

    run, _ = noisy_run
    with pytest.raises(ConfigError, match="method"):  # kiln.label_issues reaches the image task's through the run's task
        kiln.label_issues(run.path, method="magic")
    with pytest.raises(ConfigError, match="folds"):
        kiln.label_issues(run, folds=1)
