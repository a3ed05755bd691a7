"""`kiln lr-find`: an exponential learning-rate sweep (Smith, "Cyclical Learning Rates", 2017).

The model the config would train (its first phase: the head only when the backbone starts frozen)
takes one batch per step while the LR grows from `start_lr` to `end_lr` geometrically. The sweep
stops early once the smoothed loss (an exponential moving average, beta 0.9) exceeds 4x its minimum.
Suggested LR: fastai's "valley" on the smoothed loss (see `suggest`). Writes lr_find.csv,
lr_find.json and lr_find.png.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from kiln.config import Config, dump_config
from kiln.errors import ConfigError, received
from kiln.io import write_json, write_text

log = logging.getLogger("kiln.train")


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[float, float]:
    """(suggested LR, LR at the lowest smoothed loss).

    The suggestion is fastai's "valley": the longest stretch over which the smoothed loss keeps
    falling, taken a half of the way into it (past the flat start, well before the minimum, where the
    loss is about to blow up).
    """
    n = len(smoothed)
    lowest = int(np.nanargmin(smoothed))
    longest = [1] * n  # longest decreasing run (not necessarily contiguous) ending at i
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if smoothed[i] < smoothed[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[end]:
            end = i
            start = end - longest[end]
    third = (end - start) / 3
    index = min(n - 1, max(0, start + int(third) + int(third / 2)))
    return float(lrs[index]), float(lrs[lowest])


def sweep(model, batches, start_lr: float, end_lr: float, steps: int, beta: float = 0.9, diverge: float = 4.0):
    """Train one batch per LR; returns (lrs, losses, smoothed) up to where the loss diverged."""
    factor = (end_lr / start_lr) ** (1.0 / max(1, steps - 1))
    lrs, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    for i, (x, y) in zip(range(steps), batches):
        lr = start_lr * factor**i
        model.optimizer.learning_rate = lr
        loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
        if not math.isfinite(loss):
            break
        average = beta * average + (1 - beta) * loss
        value = average / (1 - beta ** (i + 1))  # bias-corrected moving average
        lrs.append(lr), losses.append(loss), smoothed.append(value)
        best = min(best, value)
        if i > 10 and value > diverge * best:
            break
    return np.array(lrs), np.array(losses), np.array(smoothed)


def plot(lrs, losses, smoothed, suggested: float, dest: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kiln.io import atomic_path

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(lrs, losses, color="0.75", linewidth=1, label="loss per batch")
    ax.plot(lrs, smoothed, color="C0", linewidth=2, label="smoothed")
    ax.axvline(suggested, color="C3", linestyle="--", label=f"suggested lr {suggested:.2g}")
    ax.set_xscale("log")
    top = np.nanpercentile(smoothed, 95) * 1.5 if len(smoothed) else None
    if top and np.isfinite(top):
        ax.set_ylim(max(0.0, float(np.nanmin(losses)) * 0.9), top)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test")
    ax.legend()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return dest


def lr_find(cfg: Config, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100, out: str | Path | None = None) -> dict:
    """Run the sweep for `cfg`; returns {"suggested_lr", "min_loss_lr", "steps", "folder", ...}."""
    import dataclasses

    import keras

    from kiln.run import new_run_dir
    from kiln.tasks.base import resolve_task
    from kiln.train.distribute import precision_policy
    from kiln.train.optim import build_optimizer
    from kiln.train.phases import apply_phase, plan_phases

    if not 0 < start_lr < end_lr:
        raise ConfigError(received("lr-find", "start_lr", start_lr, f"it must be > 0 and below end_lr={end_lr}",
                                   "Example: start_lr=1e-7 end_lr=10"))
    if steps < 10:
        raise ConfigError(received("lr-find", "steps", steps, "a sweep needs at least 10 steps", "Example: steps=100"))
    task = resolve_task(cfg)
    from kiln import user_model

    user_model.register(task, cfg.model.name)
    model_name = task.choose_model(cfg)
    source = task.read_source(cfg)
    if len(source.skipped):
        log.warning("lr-find: %d of %d inputs could not be read and are left out (kiln audit shows which)",
                    len(source.skipped), len(source.skipped) + len(source.rows))
    folder = Path(out) if out else new_run_dir(cfg.run_dir, cfg.runs_root, cfg.name, default_name="lr-find")
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "config.yaml", dump_config(cfg))
    data = task.analyse(source, cfg, model_name)
    model_name = data.model or model_name
    cfg = task.resolve_auto(cfg, data, model_name)[0]
    keras.utils.set_random_seed(cfg.seed)
    with precision_policy(cfg.train.precision):
        train_ds, _, steps_per_epoch = task.datasets(data, cfg, folder, task.batch_size(cfg, data))
        model = task.build_model(model_name, data, cfg)
        phase = plan_phases(cfg, model, model_name, task.pretrained(cfg, model_name))[0]
        apply_phase(model, phase)
        constant = cfg.train.model_copy(update={"schedule": "constant", "lr": start_lr, "warmup_epochs": 0.0})
        compiled = task.compile_spec(data, cfg)
        task.compile(model, build_optimizer(constant, steps_per_epoch), dataclasses.replace(compiled, metrics=[]), cfg)
        print(f"kiln: lr-find on {model_name}, phase {phase.index} ({len(data.split('train'))} examples), "
              f"lr {start_lr:g} -> {end_lr:g} over {steps} steps", flush=True)
        lrs, losses, smoothed = sweep(model, train_ds.repeat(), start_lr, end_lr, steps)
    if len(lrs) < 3:
        raise ConfigError(received("lr-find", "start_lr", start_lr, "the loss diverged in the first steps",
                                   "Lower start_lr, e.g. start_lr=1e-8"))
    suggested, min_loss_lr = suggest(lrs, smoothed)
    rows = ["step,lr,loss,smoothed_loss"] + [f"{i},{lr:.6g},{loss:.6g},{s:.6g}" for i, (lr, loss, s) in enumerate(zip(lrs, losses, smoothed))]
    write_text(folder / "lr_find.csv", "\n".join(rows) + "\n")
    result = {"suggested_lr": suggested, "min_loss_lr": min_loss_lr, "start_lr": start_lr, "end_lr": end_lr,
              "steps": int(len(lrs)), "stopped_early": bool(len(lrs) < steps), "model": model_name, "phase": phase.index,
              "folder": str(folder)}
    write_json(folder / "lr_find.json", result)
    plot(lrs, losses, smoothed, suggested, folder / "lr_find.png")
    return result
