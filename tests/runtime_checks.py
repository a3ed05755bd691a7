"""Shared checks for `kiln predict` through a run's verified ONNX export (kiln/export/runtime.py), used by each
task's runtime test: the export answers as Keras does, says so on stderr, and never imports TensorFlow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

NO_TF = ("import sys; from kiln.cli import main; rc = main(sys.argv[1:]); "
         "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'; sys.exit(rc or 0)")


def exported_copy(run_path: Path, dest: Path) -> Path:
    """A copy of a shared run (which stays without exports) with a verified float ONNX export in exports/onnx."""
    import kiln

    shutil.copytree(run_path, dest)
    m = kiln.export_run(dest, "onnx", out=str(dest / "exports" / "onnx"), timing={"latency_runs": 1, "batch_runs": 1, "batch_size": 4})
    assert m["passed"]
    return dest


def predict(capsys, *args) -> tuple[int, list, str]:
    """(exit code, the JSON rows printed, stderr) of `kiln predict ARGS`."""
    from kiln.cli import main

    capsys.readouterr()
    rc = main(["predict", *map(str, args)]) or 0
    out = capsys.readouterr()
    return rc, [json.loads(line) for line in out.out.splitlines() if line.startswith(("{", "["))], out.err


def predict_without_tensorflow(*args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", NO_TF, "predict", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(onnxruntime, exports/onnx)" in done.stderr
    return done
