"""Errors a person can act on.

Every user mistake becomes a `KilnError` whose message reads
`<component> received <key>=<value>; <why>. <fix>.` The CLI prints it on one line and exits 2.
"""


class KilnError(Exception):
    """A user mistake: printed as one line, exit code 2, never a traceback."""

    exit_code = 2


class ConfigError(KilnError):
    """A config key, type or value that cannot be used."""


class DataError(KilnError):
    """Data that cannot be read or split as asked."""


def received(component: str, key: str, value, why: str, fix: str) -> str:
    """Format the one-line message every KilnError uses."""
    why = why.rstrip(".")
    fix = fix.rstrip(".")
    return f"{component} received {key}={value}; {why}. {fix}."
