"""`kiln predict` on one input, per task: through the run's verified ONNX export (runtime=auto, no TensorFlow)
beside the Keras path (runtime=keras), each a fresh process timed from outside, and whether they agree.

    .venv/bin/python bench/predict.py [--repeat 5] [--tasks image,text,series,table]

Each task trains the small run of its contract-test example (kiln/tasks/*/ `example()`) with
train.export_on_finish=onnx, then `kiln predict RUN INPUT` runs `--repeat` times per runtime; the table
reports the median wall and CPU seconds. The issue's target: under 1 s of wall time on an idle machine with
an export present, the same predictions as Keras. Also times `import kiln` and `kiln --help`, which must not
import TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import table

KILN = str(Path(sys.executable).parent / "kiln")


def timed(cmd: list[str]) -> tuple[float, float, str, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, done.stdout, done.stderr


def train_example(task_name: str, root: Path) -> tuple[Path, str]:
    import pandas as pd

    import kiln
    from kiln.tasks.base import get_task

    example = get_task(task_name).example(root / "data")
    run = kiln.train(**example.overrides, task=task_name, run_dir=str(root / "run"),
                     train={"verbose": 0, "tensorboard": False, "export_on_finish": "onnx"}, evaluate={"report": False})
    one = example.predict_inputs[0] if not isinstance(example.predict_inputs, pd.DataFrame) else None
    if one is None:  # table rows: one row as a CSV file
        one = str(root / "one_row.csv")
        example.predict_inputs.iloc[:1].to_csv(one, index=False)
    return run.path, str(one)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tasks", default="image,text,series,table")
    args = ap.parse_args()
    rows = []
    py = [sys.executable, "-c"]
    for label, cmd in (("import kiln", py + ["import sys, kiln; assert 'tensorflow' not in sys.modules"]),
                       ("kiln --help", [KILN, "--help"])):
        runs = [timed(cmd)[:2] for _ in range(args.repeat)]
        rows.append(("-", label, "-", round(statistics.median(r[0] for r in runs), 2), round(statistics.median(r[1] for r in runs), 2), "-"))
    with tempfile.TemporaryDirectory(prefix="kiln-bench-predict-") as tmp:
        for task in args.tasks.split(","):
            run, one = train_example(task, Path(tmp) / task)
            outs = {}
            for runtime in ("auto", "keras"):
                runs = [timed([KILN, "predict", str(run), one, f"runtime={runtime}"]) for _ in range(args.repeat)]
                outs[runtime] = runs[-1][2]
                where = runs[-1][3].strip().splitlines()[-1] if runs[-1][3].strip() else "?"
                rows.append((task, f"runtime={runtime}", where.rsplit(" (", 1)[-1].rstrip(")"),
                             round(statistics.median(r[0] for r in runs), 2), round(statistics.median(r[1] for r in runs), 2), ""))
            same = _same(outs["auto"], outs["keras"])
            rows[-2] = (*rows[-2][:5], same)
            rows[-1] = (*rows[-1][:5], same)
            print(json.dumps(rows[-2:]), flush=True)
    print(f"\n{os.cpu_count()} CPUs, load average at the end: {os.getloadavg()[0]:.1f}; medians of {args.repeat} fresh processes")
    print(table(rows, ("task", "command", "ran in", "wall_s", "cpu_s", "same answer")))


def _same(a: str, b: str) -> str:
    """'yes (max diff 3e-07)' when both print the same labels and numbers within 1e-4."""
    import re

    la, lb = [json.loads(x) for x in a.splitlines() if x.startswith("{")], [json.loads(x) for x in b.splitlines() if x.startswith("{")]
    strip = lambda rows: json.dumps(rows, sort_keys=True)  # noqa: E731
    nums = lambda s: [float(x) for x in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", s)]  # noqa: E731
    na, nb = nums(strip(la)), nums(strip(lb))
    labels = lambda rows: [r.get("label") for r in rows]  # noqa: E731
    if labels(la) != labels(lb) or len(na) != len(nb):
        return "NO"
    diff = max((abs(x - y) for x, y in zip(na, nb)), default=0.0)
    return f"yes (max diff {diff:.0e})" if diff <= 1e-4 else f"NO (max diff {diff:.0e})"


if __name__ == "__main__":
    main()
