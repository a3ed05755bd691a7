"""Errors a person can act on.

Every user mistake becomes a `KilnError` whose message reads
`<component> received <key>=<value>; <why>. <fix>.` The CLI prints it on one line and exits 2.
"""

from __future__ import annotations

import contextvars

# The mode being run (`evaluate`, `serve`, ...), set by the CLI, so that a reader deep inside can name it.
_MODE = contextvars.ContextVar("kiln_mode", default="kiln")


class KilnError(Exception):
    """A user mistake: printed as one line, exit code 2, never a traceback."""

    exit_code = 2


class ConfigError(KilnError):
    """A config key, type or value that cannot be used."""


class DataError(KilnError):
    """Data that cannot be read or split as asked."""


class FileError(KilnError):
    """A file Kiln wrote that cannot be read back: missing, cut short, not what its name says, unsafe, or newer."""


def received(component: str, key: str, value, why: str, fix: str) -> str:
    """Format the one-line message every KilnError uses."""
    why = why.rstrip(".")
    fix = fix.rstrip(".")
    end = "" if fix.endswith("?") else "."  # "Did you mean train?"
    return f"{component} received {key}={value}; {why}. {fix}{end}"


def set_mode(name: str) -> None:
    """Name the running mode (the CLI calls this once the mode is known)."""
    _MODE.set(name)


def current_mode() -> str:
    """The running mode, `kiln` outside the CLI."""
    return _MODE.get()


def bad_file(path, why: str, fix: str) -> FileError:
    """`<mode> received file=PATH; <why>. <fix>.`: the one form for a file that cannot be read back."""
    return FileError(received(current_mode(), "file", path, why, fix))
