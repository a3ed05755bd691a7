"""One way to every command: the Python API reaches each task through the contract, as the CLI does. On every
registered task's own generated example data (no training): the data picks its task, `kiln.audit` runs that task's
audit, and a tool the task lacks (convert, augment-preview, fix=quarantine) says so in one line before any work."""

from __future__ import annotations

import pytest

from kiln.errors import KilnError
from kiln.tasks.base import TASKS, Task, _load

_load()
NAMES = sorted(TASKS)


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    out = {}
    for name in NAMES:
        task = TASKS[name]
        out[name] = (task, task.example(tmp_path_factory.mktemp(f"one-way-{name}"), seed=0))
    return out


def _own_keys(task, overrides) -> dict:
    """The example's keys of the task's own section, bare (table.target -> target), as a user passes them to kiln.audit."""
    prefix = f"{task.info.name}."
    return {k[len(prefix):]: v for k, v in overrides.items() if k.startswith(prefix)}


def _lacks(task, method: str) -> bool:
    return getattr(type(task), method) is getattr(Task, method)


@pytest.mark.parametrize("name", NAMES)
def test_data_and_its_keys_pick_the_task(examples, name):
    from kiln.api import data_task

    task, example = examples[name]
    if task.info.target == "required":  # data without a target (anomaly) looks like any table: it is named with task=
        assert data_task(example.overrides["data"], _own_keys(task, example.overrides)) is task
    assert data_task(example.overrides["data"], {"task": name, "out": "x", "strict": True}) is task


@pytest.mark.parametrize("name", NAMES)
def test_api_audit_runs_the_task_audit(examples, name, tmp_path):
    import kiln

    task, example = examples[name]
    report = kiln.audit(example.overrides["data"], out=tmp_path / "audit", progress=False, **_own_keys(task, example.overrides))
    assert isinstance(report, dict) and "problems" in report
    assert (tmp_path / "audit" / "audit.json").is_file() and (tmp_path / "audit" / "audit.html").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_tools_a_task_lacks_say_so_before_working(examples, name, tmp_path):
    import kiln

    task, example = examples[name]
    data = example.overrides["data"]
    config_keys = {k: v for k, v in example.overrides.items() if k != "data"}
    calls = {
        "quarantine": lambda: kiln.audit(data, out=tmp_path / "audit", fix="quarantine", progress=False, task=name,
                                         **_own_keys(task, example.overrides)),
        "convert": lambda: kiln.convert(data, tmp_path / "shards", progress=False, task=name, **config_keys),
        "augment_preview": lambda: kiln.augment_preview(out=tmp_path / "grid.png", data=data, task=name, **config_keys),
    }
    lacking = [method for method in calls if _lacks(task, method)]
    if not lacking:
        pytest.skip(f"the {name} task has every tool; its own tests cover them")
    for method in lacking:
        with pytest.raises(KilnError) as err:
            calls[method]()
        msg = str(err.value)
        assert "\n" not in msg and f"the {name} task does not support" in msg, msg
    assert not (tmp_path / "audit").exists() and not (tmp_path / "shards").exists() and not (tmp_path / "grid.png").exists()
