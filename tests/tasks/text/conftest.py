"""Text fixtures: generated reviews (CSV and a folder per class) and one trained bow run per session."""

from __future__ import annotations

import pytest

from kiln.tasks.text.synth import write_folder, write_reviews


@pytest.fixture(scope="session")
def reviews_csv(tmp_path_factory):
    return write_reviews(tmp_path_factory.mktemp("text") / "reviews.csv", n=300, seed=1, classes=3)


@pytest.fixture(scope="session")
def reviews_folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("textdir") / "reviews", n=60, seed=2)


@pytest.fixture(scope="session")
def text_run(tmp_path_factory, reviews_csv):
    """A three-class bow run through the CLI's config path (kiln train data=FILE text=review target=sentiment)."""
    from kiln.config import load_config
    from kiln.train.trainer import train

    run_dir = tmp_path_factory.mktemp("xruns") / "bow"
    cfg = load_config(None, [f"data={reviews_csv}", "text=review", "target=sentiment", f"run_dir={run_dir}", "epochs=12",
                             "verbose=0", "tensorboard=false", "report=false", "model=auto", "export_on_finish=none"])
    return train(cfg)
