"""One model registry per task: `@registry.register("name")` on a builder; its name is the model name.

Kept apart from kiln/tasks/base.py (which re-exports both names) so the contract stays one screen.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from kiln.errors import ConfigError, received


@dataclass
class ModelEntry:
    """One registered builder: its name is the model name; `meta` holds family facts (pretrained, ...)."""

    name: str
    builder: Callable
    family: str
    description: str
    default_size: int | None = None  # the input side the family was designed for (image backbones)
    meta: dict = field(default_factory=dict)


class ModelRegistry:
    """`@registry.register("name")` on a builder `(spec, num_outputs, **kwargs) -> keras.Model`.

    One registry per task (its builders take that task's spec). Unknown names fail with the closest
    registered ones. `loader` imports the modules whose decorators fill the registry, on first use.
    """

    def __init__(self, task: str, loader: Callable[[], None] | None = None):
        self.task = task
        self._entries: dict[str, Any] = {}
        self._loader = loader
        self._loaded = loader is None

    def register(self, name: str | None = None, *, family: str = "simple", default_size: int | None = None, **meta):
        """Decorator: register a builder under `name` (defaults to the function name)."""

        def wrap(fn):
            key = name or fn.__name__
            doc = (inspect.getdoc(fn) or "").splitlines()
            self._entries[key] = ModelEntry(key, fn, family, doc[0] if doc else "", default_size, meta)
            return fn

        return wrap

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            self._loader()

    def names(self, pattern: str = "*") -> list[str]:
        """The registered families (a user's `model=FILE.py:build`, registered while a run uses it, is not listed)."""
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern) and self._entries[n].family != "custom")

    def get(self, name: str):
        self._load()
        if name not in self._entries:
            near = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.4)
            hint = f"Did you mean {', '.join(near)}?" if near else "Run `kiln models` to list them"
            raise ConfigError(received("models", "model.name", name, "no model is registered under that name", hint))
        return self._entries[name]

    def create(self, name: str, *args, **kwargs):
        """Build a registered model; kwargs the builder does not take, or that are None, are left out."""
        entry = self.get(name)
        params = inspect.signature(entry.builder).parameters
        takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
        accepted = {k: v for k, v in kwargs.items() if v is not None and (takes_all or k in params)}
        return entry.builder(*args, **accepted)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


def build_for_inspection(task, name: str, input_shape=None, classes: int | None = None):
    """`Task.inspect_model`'s default: the registered model `name` built as the trainer builds it, for the task's own
    generated example data (`Task.example`), so its inputs and outputs are the ones a real run of the task has."""
    import tempfile
    from pathlib import Path

    from kiln.config import load_config

    for key, value in (("input_shape", input_shape), ("classes", classes)):
        if value is not None:
            shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            raise ConfigError(received("inspect", key, shown, f"a {task.info.name} model's inputs and outputs come from its data",
                                       f"Leave {key} out, or inspect a trained run folder"))
    task.models.get(name)
    with tempfile.TemporaryDirectory(prefix="kiln-inspect-") as root:
        example = task.example(Path(root), seed=0)
        cfg = load_config(overrides={**example.overrides, "task": task.info.name, "model": name})
        data = task.analyse(task.read_source(cfg), cfg, name)
        cfg = task.resolve_auto(cfg, data, name)[0]
        return task.build_model(name, data, cfg)
