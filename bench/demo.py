"""`make demo` timed: wall and CPU seconds of `kiln demo` (the two-minute tour) per task, in a fresh process each.

    .venv/bin/python bench/demo.py [--tasks image,table,series,text] [--defaults]

Each run is `kiln demo task=NAME verbose=0` in a new process (TensorFlow's start-up included, install
excluded), timed from outside; CPU is the child's user + system time. The issue's target: the image demo
(`make demo`) under 120 s of wall time on 2 idle cores. `--defaults` also times the image demo with kiln
train's own defaults for the digits (image_size=auto, epochs=auto: 32 px, 21 epochs + the train+val refit),
what `make demo` ran before the tour chose its settings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import table

KILN = str(Path(sys.executable).parent / "kiln")


def timed_demo(task: str, root: Path, *extra: str) -> dict:
    run_dir = root / f"{task}{'-defaults' if extra else ''}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([KILN, "demo", f"task={task}", f"run_dir={run_dir}", "verbose=0", *extra], capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"kiln demo task={task} failed:\n{done.stderr[-2000:]}")
    shown = json.loads((run_dir / "demo.json").read_text())
    return {"task": task, "settings": "defaults" if extra else "tour", "wall_s": round(wall, 1),
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            "metric": shown["metric"], "test": round(shown["test"], 4),
            "best_baseline": round((max if shown["higher_is_better"] else min)(shown["baselines"].values()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="image,table,series,text")
    ap.add_argument("--defaults", action="store_true", help="also time the image demo with kiln train's defaults")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-demo-") as tmp:
        for task in args.tasks.split(","):
            rows.append(timed_demo(task, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
        if args.defaults:
            rows.append(timed_demo("image", Path(tmp), "image_size=auto", "epochs=auto"))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{os.cpu_count()} CPUs, load average before the last run: {os.getloadavg()[0]:.1f}")
    print(table([tuple(r.values()) for r in rows], tuple(rows[0])))


if __name__ == "__main__":
    main()
