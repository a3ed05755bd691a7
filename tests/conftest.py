"""Shared fixtures. Data is generated here, never downloaded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

from synth import make_image_folder  # noqa: E402

pytest_plugins = ["budget"]  # tests/budget.py: the suite's time budget

REPO = Path(__file__).resolve().parents[1]
KILN = str(Path(sys.executable).parent / "kiln")


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """3 classes x 40 RGB PNGs, 32x32: learnable in a few epochs."""
    return make_image_folder(tmp_path_factory.mktemp("shapes"), classes=3, per_class=40, size=32)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, shapes_dir):
    """One small trained run shared by evaluate / export / serve / report tests (read it, never write into it)."""
    import kiln

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    return kiln.train(data=str(shapes_dir), run_dir=str(run_dir), epochs=12, seed=1, image_size=32,
                      train={"verbose": 0, "tensorboard": False, "export_on_finish": "none"},  # stays without exports
                      model={"filters": [16, 32], "units": [32]})

