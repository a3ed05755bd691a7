"""The Python API mirrors the CLI: `kiln.train(...) -> Run`, `kiln.load_run(path)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiln.run import Run, load_run


def _flatten_kwargs(kwargs: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`train={"lr": 0.01}` -> `{"train.lr": 0.01}`; `data="dir"` stays a shortcut for data.path."""
    from kiln.config.load import mapping_keys

    flat = {}
    for key, value in kwargs.items():
        if isinstance(value, dict) and f"{prefix}{key}" not in mapping_keys():
            for sub, v in _flatten_kwargs(value, f"{prefix}{key}.").items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    return flat


def train(config: str | Path | None = None, **overrides) -> Run:
    """Train from an optional YAML file plus keyword overrides (same keys as the CLI)."""
    from kiln.config import load_config
    from kiln.train.trainer import train as run_training

    cfg = load_config(config, overrides=_flatten_kwargs(overrides))
    return run_training(cfg)


__all__ = ["Run", "load_run", "train"]
