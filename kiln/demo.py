"""`kiln demo [task=NAME] [key=value ...]`: a two-minute tour of one task on real data that ships inside a dependency.

Every task's demo is the same walk, here, blind to the task: write the data into RUN/data, audit it, train
(with the few settings the task's `DemoPlan` picks so the tour stays short; the user's key=value win), evaluate
on the test split beside the honest baselines, predict a few inputs, export in the plan's format (verified by
`kiln export`'s own parity gate) and write report.html. The task supplies only its `DemoPlan`
(`Task.demo_plan`): the data, the settings and why, the inputs to predict, the export and its baselines.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

DEFAULT_TASK = "image"


@dataclass
class DemoPlan:
    """What one task's demo trains on and shows.

    `settings`: config keys (dotted) the tour sets, and `why` says why in one line; `metric` is the test
    metric printed as the headline (`higher`: its direction); `baselines(run)` -> {name: that metric on
    the same test split}; `export`: (format, quantize) written and verified; `predict`: inputs for predict."""

    data: Path
    settings: dict
    why: str
    metric: str
    higher: bool
    predict: list
    export: tuple[str, str] = ("onnx", "none")
    audit: dict = field(default_factory=dict)
    baselines: Callable[[Any], dict] | None = None
    source: str = ""  # where the data comes from, in words


def _resolved(overrides: dict) -> dict:
    """Keys as the config names them (`image_size` -> `data.image_size`), so a user's bare key wins over the plan's."""
    from kiln.config.load import resolve_key
    from kiln.config.schema import config_model

    return {resolve_key(k, config_model(), "demo"): v for k, v in overrides.items()}


def demo(overrides: dict | None = None):
    """Run one task's demo end to end and print where everything is; returns the `Run`."""
    from kiln.config import load_config
    from kiln.evaluate.report import write_report
    from kiln.export.export import export_run
    from kiln.io import read_json
    from kiln.run import new_run_dir
    from kiln.tasks.base import get_task
    from kiln.train.trainer import train

    started = time.time()
    overrides = _resolved(dict(overrides or {}))
    task = get_task(overrides.pop("task", None) or DEFAULT_TASK)
    base = load_config(overrides=overrides)
    run_dir = new_run_dir(base.run_dir, base.runs_root, base.name or ("demo" if task.info.name == DEFAULT_TASK else f"demo-{task.info.name}"))
    plan = task.demo_plan(run_dir / "data")
    print(f"kiln demo: {task.info.name} task on {plan.source}", flush=True)
    found = task.audit(str(plan.data), out=str(run_dir), progress=False, **plan.audit)
    print(f"kiln demo: {_audit_line(found)} (details in {run_dir / 'audit.html'})", flush=True)
    mine = {k: v for k, v in plan.settings.items() if k not in overrides}
    if mine:
        print(f"kiln demo: {' '.join(f'{k}={_show(v)}' for k, v in mine.items())} ({plan.why}; any key=value overrides them)",
              flush=True)
    cfg = load_config(overrides={**plan.settings, **overrides, "data.path": str(plan.data), "run_dir": str(run_dir)})
    run = train(cfg)
    test = run.evaluate(split="test", out=str(run_dir / "evaluate_test.json"))
    baselines = plan.baselines(run) if plan.baselines else {}
    predictions = run.predict(plan.predict, out=str(run_dir / "predictions.csv"))
    for p in predictions:
        print(json.dumps(p))
    fmt, quantize = plan.export
    name = fmt if quantize == "none" else f"{fmt}-{quantize}"
    done = run_dir / "exports" / name / "export.json"  # train.export_on_finish may have written it already
    exported = read_json(done, "a Kiln export.json") if done.is_file() else export_run(run_dir, fmt, quantize, out=str(done.parent))
    report = write_report(run)  # again, now with the export's parity figures
    score = test[plan.metric]
    print(f"\nkiln demo: test {plan.metric} {score:.4f} on {test.get('n', test.get('windows', '?'))} examples")
    for bname, value in baselines.items():
        beats = (score > value) if plan.higher else (score < value)
        verdict = "beaten by the model" if beats else "tied with the model" if score == value else "NOT beaten by the model"
        print(f"kiln demo:   baseline {bname:<30} {value:.4f}  ({verdict})")
    print(f"kiln demo: {fmt} {quantize} export agrees with the Keras model on {exported['agreement']:.1%} of "
          f"{exported.get('parity_split', 'test')} examples, {exported['size_bytes'] / 1024:.0f} KiB (verified: {exported['passed']})")
    print(f"  run folder   {run_dir}")
    for item in ("config.yaml", "splits.csv", "model.keras", "history.csv", "metrics.json", "plots", "evaluate_test.json",
                 "predictions.csv", "audit.html"):
        if (run_dir / item).exists():
            print(f"  {item:<18} {run_dir / item}")
    print(f"  {'export':<18} {run_dir / 'exports' / name}")
    print(f"  {'report':<18} {report}")
    from kiln.io import write_json

    write_json(run_dir / "demo.json", {"task": task.info.name, "metric": plan.metric, "higher_is_better": plan.higher, "test": score,
                                       "baselines": baselines, "export": exported.get("format"), "seconds": round(time.time() - started, 1)})
    print(f"kiln demo: done in {time.time() - started:.0f} s", flush=True)
    return run


def metric_baselines(metric: str):
    """`DemoPlan.baselines` for a task whose metrics.json holds its baselines: {name: `metric` on the test split}."""
    def read(run) -> dict:
        found = (run.metrics.get("baselines") or {}).get("test") or {}
        return {name: float(b[metric]) for name, b in found.items() if isinstance(b, dict) and b.get(metric) is not None}

    return read


def _audit_line(found: dict) -> str:
    """'audited 569 rows; findings by kind: 23 outliers' from any task's audit.json (kinds, counts or a problems list)."""
    from collections import Counter

    kinds = found.get("kinds") or found.get("counts")
    if not kinds and isinstance(found.get("problems"), list):
        kinds = Counter(str(p.get("kind")) for p in found["problems"] if isinstance(p, dict))
    n = found.get("files") or found.get("rows") or (found.get("source") or {}).get("rows") or "?"
    listed = ", ".join(f"{c} {k}" for k, c in (kinds or {}).items()) or "none"
    return f"audited {n} {'files' if 'files' in found else 'rows'}; findings by kind: {listed}"


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


__all__ = ["DEFAULT_TASK", "DemoPlan", "demo", "metric_baselines"]
