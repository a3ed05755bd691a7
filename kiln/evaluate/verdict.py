"""The verdict of a run against its baselines: does the model lose to a baseline on validation, by how much?

    from kiln.evaluate.verdict import verdict
    metrics["verdict"] = verdict(metrics, [(m.key, m.direction) for m in task.headline_metrics(meta)], task.info.monitor, task.info.mode)

Task-blind: it reads metrics.json's `baselines` ({split: {name: {metric: value}}}) and the model's own
metrics of the same split, on the run's headline metrics (`Task.headline_metrics`: the first (key, direction)
the split holds) or else its monitored metric. The answer is one plain line for the end-of-training summary,
the report's first section and metrics.json, plus the figures behind it.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def pick_metric(split_metrics: Mapping, headline: Sequence[tuple[str, str]], monitor: str = "", mode: str = "min"):
    """(metric, direction) the verdict compares on: the first headline metric with a number in `split_metrics`."""
    for name, direction in list(headline) + [(monitor.removeprefix("val_"), mode)]:
        if name and _number(split_metrics.get(name)) is not None:
            return name, direction
    return None


def verdict(metrics: Mapping, headline: Sequence[tuple[str, str]] = (), monitor: str = "", mode: str = "min",
            split: str = "val") -> dict | None:
    """{"loses", "split", "metric", "mode", "model", "baseline", "baseline_score", "gap", "gap_percent", "line"}, comparing
    the model with the best baseline of `split` (val unless it has none, then test); None without baselines to compare."""
    baselines = metrics.get("baselines") or {}
    if not baselines.get(split):
        split = next((s for s in ("val", "test") if baselines.get(s) and s in metrics), split)
    ours, theirs = metrics.get(split) or {}, baselines.get(split) or {}
    picked = pick_metric(ours, headline, monitor, mode) if theirs else None
    if not picked:
        return None
    name, direction = picked
    sign = 1.0 if direction == "max" else -1.0  # sign * score: higher is better
    scored = {b: _number(m.get(name)) for b, m in theirs.items() if isinstance(m, Mapping)}
    scored = {b: v for b, v in scored.items() if v is not None}
    if not scored:
        return None
    best = max(scored, key=lambda b: sign * scored[b])
    model, base = _number(ours[name]), scored[best]
    gap = sign * (base - model)  # > 0: the baseline is better by this much
    pct = 100.0 * gap / abs(base) if base else None
    out = {"loses": gap > 0, "split": split, "metric": name, "mode": direction, "model": model, "baseline": best,
           "baseline_score": base, "gap": gap, "gap_percent": pct}
    how = f"{abs(gap):.4g}{f' ({abs(pct):.1f} %)' if pct is not None else ''}"
    if gap > 0:
        out["line"] = (f"the model LOSES to the {best} baseline on {split} {name}: {model:.4g} vs {base:.4g}, "
                       f"{how} {'lower' if direction == 'max' else 'higher'} ({'higher' if direction == 'max' else 'lower'} is better)")
    else:
        out["line"] = f"the model beats or ties every baseline on {split} {name}: {model:.4g}, best baseline {best} {base:.4g}"
    if _number(ours.get("threshold")) is not None and name not in ("roc_auc", "log_loss", "pr_auc", "brier"):
        out["line"] += f" (the model at its decision threshold {float(ours['threshold']):.2f}, the baselines at their own)"
    return out


def verdict_html(v: Mapping | None) -> str:
    """The verdict as one paragraph for the report's first section ('' when there is none)."""
    import html

    if not v or "line" not in v:
        return ""
    cls = "bad" if v.get("loses") else "good"
    advice = f" {html.escape(v['advice'])}." if v.get("advice") else ""
    return f"<p class='{cls}'><b>Verdict:</b> {html.escape(v['line'])}.{advice}</p>"


__all__ = ["pick_metric", "verdict", "verdict_html"]
