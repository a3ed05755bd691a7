"""Model registry: `@register_model` on a builder function; its name is the model name.

A builder takes `(input_shape, num_classes, **kwargs)` and returns an uncompiled `keras.Model`
that accepts raw pixels (0-255): any rescaling or `preprocess_input` lives inside it, so a saved
model needs no outside preprocessing. Unset (None) kwargs keep the builder's defaults.
"""

from __future__ import annotations

import inspect

from kiln.tasks.base import ModelRegistry


def _load_families() -> None:
    # Importing a family module registers its builders.
    from kiln.tasks.image.models import backbones, simple, vit  # noqa: F401


MODELS = ModelRegistry("image", loader=_load_families)
_REGISTRY = MODELS._entries  # name -> ModelEntry
register_model = MODELS.register
list_models = MODELS.names
get_entry = MODELS.get


def create_model(name: str, input_shape, num_classes: int, **kwargs):
    """Build a registered model; kwargs the builder does not take, or that are None, are ignored.

    `weights=` (auto | imagenet | none | run folder | .keras | .weights.h5 | .h5) is resolved by
    `kiln.tasks.image.models.weights`: a run folder or .keras file gives its trained backbone a new head.
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
    from kiln.tasks.image.models.weights import create_with_weights

    return create_with_weights(entry, tuple(input_shape), int(num_classes), weights, kwargs, build)
