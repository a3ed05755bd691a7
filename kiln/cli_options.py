"""Options of a CLI mode that are not training config keys (out=, split=, strict=, ...): parsed and checked in
one place, by kiln/cli.py and by the commands a task runs itself (Task.command)."""

from __future__ import annotations

from kiln.errors import ConfigError, received

# `format=` of kiln runs, compare and inspect: a text table or JSON. The word "table" names a layout here, not the table
# task; this constant is the one place the spine spells it (tests/tasks/test_spine_blind.py allows exactly this name).
TEXT_TABLE = "table"
OUTPUT_FORMATS = (TEXT_TABLE, "json")


def mode_options(pairs: list[str], allowed: dict[str, type], component: str) -> dict:
    """Mode options (out=, split=, ...) that are not training config keys."""
    import difflib

    from kiln.config import parse_overrides

    values = parse_overrides(pairs, component)
    for key, value in values.items():
        if key not in allowed:
            near = difflib.get_close_matches(key, list(allowed), n=2)
            hint = f"Did you mean {' or '.join(near)}?" if near else f"Valid keys: {', '.join(allowed)}"
            raise ConfigError(f"{component} received unknown key {key}; it is not an option of kiln {component}. {hint}")
        kind = allowed[key]
        if kind is int and not isinstance(value, int):
            raise ConfigError(received(component, key, value, "it must be a whole number", f"Example: {key}=5"))
        if kind is str and value is not None:
            values[key] = str(value)
    return values


def ignore_kinds(value, kinds, component: str = "audit") -> list[str]:
    """`ignore=KIND,..` as a list, every entry one of `kinds`."""
    ignore = value or []
    ignore = [ignore] if isinstance(ignore, str) else [str(k) for k in ignore]
    unknown = [k for k in ignore if k not in kinds]
    if unknown:
        raise ConfigError(received(component, "ignore", unknown[0], "no such problem kind", f"Kinds: {', '.join(kinds)}"))
    return ignore


__all__ = ["OUTPUT_FORMATS", "TEXT_TABLE", "ignore_kinds", "mode_options"]
