"""`auto` decisions: a config value a task chose from the data, and why.

A task's `resolve_auto` returns them; the trainer prints each in one line when training starts and
keeps them in run.json under "auto", so the report can show why the run looks the way it does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EPOCHS_RANGE = (20, 100)  # what `train.epochs=auto` may resolve to (tune and schedules plan for the longest)


@dataclass(frozen=True)
class Decision:
    key: str  # dotted config key
    value: Any
    why: str

    def line(self) -> str:
        value = ",".join(map(str, self.value)) if isinstance(self.value, (list, tuple)) else self.value
        value = str(value).lower() if isinstance(value, bool) else value  # as typed on the command line
        return f"auto: {self.key}={value} ({self.why})"


def record(decisions: list[Decision]) -> dict:
    """run.json's "auto": {key: {"value": ..., "why": ...}}."""
    return {d.key: {k: v for k, v in asdict(d).items() if k != "key"} for d in decisions}
