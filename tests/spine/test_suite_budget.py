"""The suite's time budget (tests/budget.py) fails a run that takes longer than KILN_SUITE_BUDGET_S, and only then."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _run(tmp_path, budget: str):
    sample = tmp_path / "test_sample.py"
    sample.write_text("import time\n\ndef test_slow():\n    time.sleep(0.3)\n")
    env = {**os.environ, "KILN_SUITE_BUDGET_S": budget, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "budget", str(sample)],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)


def test_over_budget_fails_with_a_line(tmp_path):
    over = _run(tmp_path, "0.1")
    assert over.returncode == 1 and "suite budget: the suite took" in over.stdout and "1 passed" in over.stdout


def test_within_budget_passes(tmp_path):
    within = _run(tmp_path, "600")
    assert within.returncode == 0 and "suite budget" not in within.stdout
