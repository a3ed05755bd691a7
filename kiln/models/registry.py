"""Model registry: `@register_model` on a builder function; its name is the model name.

A builder takes `(input_shape, num_classes, **kwargs)` and returns an uncompiled `keras.Model`
that accepts raw pixels (0-255): any rescaling or `preprocess_input` lives inside it, so a saved
model needs no outside preprocessing. Unset (None) kwargs keep the builder's defaults.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Callable

from kiln.errors import ConfigError, received


@dataclass
class ModelEntry:
    name: str
    builder: Callable
    family: str
    description: str
    default_size: int | None = None  # the input side the family was designed for
    meta: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str | None = None, *, family: str = "simple", default_size: int | None = None, **meta):
    """Decorator: register a builder under `name` (defaults to the function name)."""

    def wrap(fn):
        key = name or fn.__name__
        doc = (inspect.getdoc(fn) or "").splitlines()
        _REGISTRY[key] = ModelEntry(key, fn, family, doc[0] if doc else "", default_size, meta)
        return fn

    return wrap


def _load_families() -> None:
    # Importing a family module registers its builders.
    from kiln.models import backbones, simple, vit  # noqa: F401


def list_models(pattern: str = "*") -> list[str]:
    _load_families()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    _load_families()
    if name not in _REGISTRY:
        near = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
        hint = f"Did you mean {', '.join(near)}?" if near else "Run `kiln models` to list them"
        raise ConfigError(received("models", "model.name", name, "no model is registered under that name", hint))
    return _REGISTRY[name]


def create_model(name: str, input_shape, num_classes: int, **kwargs):
    """Build a registered model; kwargs the builder does not take, or that are None, are ignored.

    `weights=` (auto | imagenet | none | run folder | .keras | .weights.h5 | .h5) is resolved by
    `kiln.models.weights`: a run folder or .keras file gives its trained backbone a new head.
    """
    entry = get_entry(name)
    params = inspect.signature(entry.builder).parameters
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    weights = kwargs.pop("weights", None)

    def build(**extra):  # extra (the resolved weights) is passed even when None: None means "no weights"
        accepted = {k: v for k, v in kwargs.items() if v is not None and (takes_all or k in params)}
        accepted.update({k: v for k, v in extra.items() if takes_all or k in params})
        return entry.builder(tuple(input_shape), int(num_classes), **accepted)

    if weights is None:
        return build()
    from kiln.models.weights import create_with_weights

    return create_with_weights(entry, tuple(input_shape), int(num_classes), weights, kwargs, build)
