"""The suite's time budget, as a pytest plugin (tests/conftest.py loads it).

`make test` sets KILN_SUITE_BUDGET_S: a whole-suite run that takes longer fails, so the suite cannot drift past its
limit unnoticed as capabilities are added (the slowest tests are printed by --durations just above the verdict).
"""

from __future__ import annotations

import os
import time

import pytest

_STARTED: list[float] = []


def pytest_sessionstart(session):
    _STARTED.append(time.monotonic())


def pytest_sessionfinish(session, exitstatus):
    budget = float(os.environ.get("KILN_SUITE_BUDGET_S") or 0)
    if not budget or not _STARTED or exitstatus != pytest.ExitCode.OK:
        return
    took = time.monotonic() - _STARTED[0]
    if took > budget:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        line = (f"suite budget: the suite took {took:.0f} s, over its budget of {budget:.0f} s (KILN_SUITE_BUDGET_S); "
                "make the slowest tests above cheaper (share a trained fixture, use less data)")
        if reporter is not None:
            reporter.write_line(line, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
