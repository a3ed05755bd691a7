"""Every registered task end to end on its own tiny generated data: train, evaluate, predict, export in
each declared format, serve one request over loopback. A new task passes this before it is merged."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kiln.tasks.base import TASKS, _load

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
_load()
NAMES = sorted(TASKS)
FAST = {"latency_runs": 2, "batch_runs": 1, "batch_size": 4}


@pytest.fixture(scope="module", params=NAMES)
def trained(request, tmp_path_factory):
    import kiln

    task = TASKS[request.param]
    root = tmp_path_factory.mktemp(f"contract-{task.info.name}")
    example = task.example(root, seed=0)
    run = kiln.train(**example.overrides, task=task.info.name, run_dir=str(root / "run"), seed=0,
                     train={"verbose": 0, "tensorboard": False}, evaluate={"report": False})
    return task, example, run, root


def test_run_names_its_task_and_evaluates(trained):
    task, example, run, _ = trained
    meta = json.loads((run.path / "run.json").read_text())
    assert meta["task"] == task.info.name
    assert run.task is task
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert set(metrics) & {"val", "test"}
    split = "test" if "test" in metrics else "val"
    assert set(run.evaluate(split=split)) == set(metrics[split])  # kiln evaluate gives the keys metrics.json has
    kind = task.returns(meta)  # the tags the spine reads: what the run returns and the metrics it leads with
    assert kind in task.info.returns and task.headline_metrics(meta)
    assert all(m.key in metrics[split] for m in task.headline_metrics(meta)), (kind, [m.key for m in task.headline_metrics(meta)])
    assert len(run.predict(example.predict_inputs)) == len(example.predict_inputs)
    assert (run.path / "splits.csv").is_file()


def test_report_renders_task_sections(trained):
    from kiln.evaluate.report import write_report

    task, _, run, _ = trained
    page = write_report(run).read_text()
    for section in task.report_sections(run, None):
        assert f'id="{section.id}"' in page


def test_exports_every_declared_format(trained):
    import kiln

    import logging

    task, _, run, root = trained
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("tensorflow").addHandler(handler)
    try:
        for fmt in task.info.export_formats:
            m = kiln.export_run(run.path, fmt, out=str(root / "exports" / fmt), timing=FAST)
            assert m["task"] == task.info.name and m["passed"], (fmt, m["agreement"])
            assert m["metric"] and m["agreement_rule"]  # the export table names what its figures are
    finally:
        logging.getLogger("tensorflow").removeHandler(handler)
    assert not [s for s in seen if "'NoneType' object has no attribute 'name'" in s]  # text's lookup table: no stray line


def test_serves_one_request_over_loopback(trained):
    from kiln_serving import running

    from kiln.serve.app import create_app

    _, example, run, _ = trained
    app = create_app(run.path)
    path = example.request_path.format(name=app.state.kiln.model.name)
    with running(app) as url:
        req = urllib.request.Request(url + path, data=json.dumps(example.request).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
            assert json.loads(resp.read())
        name = app.state.kiln.model.name
        for version in ("", "/versions/1"):  # KServe v2 model metadata and readiness come from the spine, for every task
            with urllib.request.urlopen(f"{url}/v2/models/{name}{version}", timeout=30) as resp:
                meta = json.loads(resp.read())
                assert resp.status == 200 and meta == app.state.kiln.adapter.metadata() and meta.get("inputs")
            with urllib.request.urlopen(f"{url}/v2/models/{name}{version}/ready", timeout=30) as resp:
                assert resp.status == 200 and json.loads(resp.read()) == {"name": name, "ready": True}
        try:
            urllib.request.urlopen(f"{url}/v2/models/{name}/versions/2/ready", timeout=30)
            raise AssertionError("version 2 must be a 404")
        except urllib.error.HTTPError as err:
            assert err.code == 404


def test_label_issues_go_through_the_run_task(trained, capsys):
    """`kiln label-issues` and `kiln.label_issues` dispatch on the run's task; one that lacks it says so in one line
    (exit 2) before any work. The image task's own label issues: tests/evaluate/test_label_issues.py."""
    import kiln
    from kiln.cli import main
    from kiln.tasks.base import Task, TaskError

    task, _, run, _ = trained
    if type(task).label_issues is not Task.label_issues:
        pytest.skip(f"the {task.info.name} task finds label issues; its own tests cover them")
    assert main(["label-issues", str(run.path), "method=fast"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"the {task.info.name} task does not support label-issues" in err, err
    with pytest.raises(TaskError):
        kiln.label_issues(run.path)
    assert not (run.path / "label_issues.csv").exists()
