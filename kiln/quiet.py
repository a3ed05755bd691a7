"""Keep TensorFlow's C++ start-up lines off the CLI's stderr.

`import tensorflow` (2.21) prints, through absl, four lines that say nothing to a Kiln user (oneDNN is on,
the binary could use more CPU instructions, absl is not initialised) and that `TF_CPP_MIN_LOG_LEVEL` no
longer silences: a one-line error would arrive under four lines of noise. The CLI installs a finder that
runs TensorFlow's own import with file descriptor 2 sent to a temp file, then replays every line that is
not one of those, so a real warning or error still reaches the terminal. Library users' imports are
left alone.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import importlib.machinery
import os
import re
import sys
import tempfile

NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:. ]+\d+ (port|cpu_feature_guard)\.cc:\d+\] .*"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.)$")


@contextlib.contextmanager
def filtered_stderr():
    """Send fd 2 to a temp file for the duration; then write its non-noise lines to the real stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not NOISE.match(line.rstrip("\r\n"))]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _Loader(importlib.abc.Loader):
    def __init__(self, real):
        self.real = real

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.real  # the module keeps its real loader
        with filtered_stderr():
            self.real.exec_module(module)


class QuietTensorFlow(importlib.abc.MetaPathFinder):
    """A one-shot finder: the first `import tensorflow` runs under `filtered_stderr`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        uninstall()
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    if "tensorflow" not in sys.modules and not any(isinstance(f, QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, QuietTensorFlow())


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, QuietTensorFlow)]


# TensorFlow's Python warnings that are known noise: a model holding a lookup table (text vectorization) makes every
# graph export log "Issue encountered when serializing table_initializer" plus a second line, "'NoneType' object has
# no attribute 'name'", though the export loads and passes its parity check.
HARMLESS = ("Issue encountered when serializing table_initializer",)


class _Harmless(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(HARMLESS)


@contextlib.contextmanager
def harmless_tf_warnings():
    """Drop the HARMLESS TensorFlow warnings for the duration (other warnings pass)."""
    log = logging.getLogger("tensorflow")
    f = _Harmless()
    log.addFilter(f)
    try:
        yield
    finally:
        log.removeFilter(f)
