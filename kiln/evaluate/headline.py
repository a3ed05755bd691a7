"""The numbers a run leads with, read from its task's tags (`Task.headline`): the summary line of `kiln train`,
the columns of `kiln runs` / `kiln compare` and the learning curves all show the same metrics, whatever the task."""

from __future__ import annotations

from typing import Mapping


def headline(meta: Mapping):
    """The run's task's headline metrics (kiln.tasks.types.Metric), best first; () for a task this Kiln lacks."""
    from kiln.tasks.base import TaskError, task_of

    try:
        return task_of(meta).headline(meta)
    except TaskError:
        return ()


def _number(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"


def split_line(split: str, values: Mapping, metrics) -> str | None:
    """`kiln: test accuracy 0.9500  macro F1 0.9400  (n=120)` for one split's metrics.json entry."""
    shown = [f"{m.label} {_number(values[m.key])}" for m in metrics if isinstance(values.get(m.key), (int, float))]
    if not shown:
        return None
    count = f"n={values['n']}" if "n" in values else f"{values['windows']} windows" if "windows" in values else None
    return f"kiln: {split} {'  '.join(shown)}" + (f"  ({count})" if count else "")


def summary_lines(meta: Mapping, metrics: Mapping) -> list[str]:
    """The end-of-training summary: val and test on the headline metrics, then each baseline on the first one."""
    shown = headline(meta)
    lines = [line for split in ("val", "test") if split in metrics and (line := split_line(split, metrics[split], shown))]
    first = next((m for m in shown if any(b.get(m.key) is not None for b in (metrics.get("baselines") or {}).get("test", {}).values())), None)
    if first is not None:
        for name, b in metrics["baselines"]["test"].items():
            if b.get(first.key) is not None:
                lines.append(f"kiln: baseline {name:<24} test {first.label} {b[first.key]:.4f}")
    return lines


def history_metrics(meta: Mapping) -> list[str]:
    """history.csv columns worth a curve: loss, then each headline metric tracked while training."""
    return ["loss"] + [m.history for m in headline(meta) if m.history]


__all__ = ["headline", "history_metrics", "split_line", "summary_lines"]
