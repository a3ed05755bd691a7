"""The typed metrics a run leads with, read from its task's tags (`Task.headline_metrics`, TaskInfo.headline): the
learning curves and the doctor read them; the figures each view prints come from `Task.headline(values)`."""

from __future__ import annotations

from typing import Mapping


def headline(meta: Mapping):
    """The run's task's headline metrics (kiln.tasks.types.Metric), best first; () for a task this Kiln lacks."""
    from kiln.tasks.base import TaskError, task_of

    try:
        return task_of(meta).headline_metrics(meta)
    except TaskError:
        return ()


def history_metrics(meta: Mapping) -> list[str]:
    """history.csv columns worth a curve: loss, then each headline metric tracked while training."""
    return ["loss"] + [m.history for m in headline(meta) if m.history]


__all__ = ["headline", "history_metrics"]
