"""The CLI's stderr carries Kiln's own lines, not TensorFlow's C++ start-up lines; real ones still pass."""

import os
import subprocess
import sys

from conftest import KILN
from kiln.quiet import filtered_stderr


def test_a_user_mistake_is_the_only_line_on_stderr(tmp_path):
    proc = subprocess.run([KILN, "train", f"data={tmp_path / 'missing'}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"data received data={tmp_path / 'missing'}; no such file or folder. Check the path."]


def test_tensorflow_is_really_imported_under_the_filter():
    code = ("import sys; from kiln import quiet; quiet.install(); import tensorflow as tf; "
            "print(tf.__version__, type(tf.__spec__.loader).__name__, 'tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.split()[0].startswith("2.") and proc.stdout.split()[2] == "True"
    assert proc.stdout.split()[1] != "_Loader"  # the module keeps TensorFlow's own loader
    assert "port.cc" not in proc.stderr and "absl::InitializeLog" not in proc.stderr


def test_other_stderr_lines_are_replayed(capfd):
    with filtered_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1795251835.606842   28148 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"E0000 00:00:1795251835.6 28148 cuda_dnn.cc:1] a real error\n")
        print("a Python warning", file=sys.stderr)
    # (order aside: under pytest, sys.stderr is pytest's capture, not fd 2)
    assert sorted(capfd.readouterr().err.splitlines()) == ["E0000 00:00:1795251835.6 28148 cuda_dnn.cc:1] a real error",
                                                           "a Python warning"]
