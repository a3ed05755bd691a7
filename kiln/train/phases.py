"""Training phases: the plan, freezing and unfreezing the backbone, and fitting phase after phase.

A model whose feature extractor is reusable holds it as ONE nested `keras.Model` layer named
"backbone"; everything else is the head. With two phases:

1. the head trains on a frozen backbone (`train.epochs`, `train.lr`, `train.patience`);
2. the top `train.unfreeze` backbone layers train too, BatchNormalization kept frozen (so it runs in
   inference mode with its pretrained statistics), at `train.finetune_lr` for `train.finetune_epochs`
   with `train.finetune_patience`.

Each phase compiles a fresh optimizer whose per-step schedule spans that phase. Epoch numbers run
on across phases (phase 2 starts where phase 1 stopped) and history.csv has a `phase` column.
Models without a backbone (linear / dnn / cnn from scratch) have one phase.

`train.refit=true` adds a last phase: a fresh model (the initial weights again) trains on train+val,
without early stopping, on phase 1's learning-rate schedule, and stops at the epoch where phase 1 was
best on val (on a running mean over 5 epochs: one lucky epoch of a noisy val curve is not its best); val has
then done its one job (choosing the epoch) and still feeds the final model.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from kiln.config.schema import Config, TrainConfig
from kiln.errors import ConfigError, received

log = logging.getLogger("kiln.train")

BACKBONE = "backbone"
SMOOTH_EPOCHS = 5  # the refit's epoch count is chosen on val's running mean over this many epochs


@dataclass(frozen=True)
class Phase:
    index: int  # 1 or 2
    epochs: int  # epochs in this phase
    lr: float
    patience: int
    trainable: str | int | float  # "model" (everything), "head" (backbone frozen), or phase 2's unfreeze spec
    refit: bool = False  # train a fresh model on train+val for the best epoch count of the phase before
    schedule_epochs: int | None = None  # the LR schedule's length when it differs from `epochs` (the refit's)

    def train_config(self, cfg: TrainConfig) -> TrainConfig:
        """The `train` section as this phase sees it (its own LR, epochs and patience)."""
        update = {"lr": self.lr, "epochs": self.epochs, "patience": self.patience}
        if self.index > 1:
            update["warmup_epochs"] = 0.0
        return cfg.model_copy(update=update)


def find_backbone(model):
    """The nested "backbone" `keras.Model`, or None."""
    import keras

    for layer in model.layers:
        if layer.name == BACKBONE and isinstance(layer, keras.Model):
            return layer
    return None


def plan_phases(cfg: Config, model, model_name: str | None = None, pretrained: bool = False) -> list[Phase]:
    """The phases of a run; `pretrained`: the task's word that the backbone starts from learned features."""
    t = cfg.train
    backbone = find_backbone(model)
    if t.phases == 2 and backbone is None:
        raise ConfigError(received("train", "phases", 2, f"model {model_name or model.name} has no '{BACKBONE}' layer to freeze",
                                   "Use phases=auto, or a model with a backbone (kiln models)"))
    two = backbone is not None and (t.phases == 2 or (t.phases == "auto" and pretrained))
    if not two:
        plan = [Phase(1, t.epochs, t.lr, t.patience, "model")]
        if t.refit is True:
            plan.append(Phase(2, t.epochs, t.lr, 0, "model", refit=True))  # epochs: set once phase 1 has chosen
        return plan
    plan = [Phase(1, t.epochs, t.lr, t.patience, "head")]
    if t.finetune_epochs:
        plan.append(Phase(2, t.finetune_epochs, t.finetune_lr, t.finetune_patience, t.unfreeze))
    return plan


def weighted_layers(model) -> list:
    """Leaf layers that own weights, in graph order (nested models flattened)."""
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            out.extend(weighted_layers(layer))
        elif layer.weights:
            out.append(layer)
    return out


def set_trainable(layer, value: bool) -> None:
    """`layer.trainable = value` for the layer and every nested layer (Keras does not always recurse
    into a Functional model's layers)."""
    layer.trainable = value
    for sub in getattr(layer, "layers", None) or []:
        set_trainable(sub, value)


def unfreeze_count(spec: str | int | float, n: int) -> int:
    if spec == "all":
        return n
    if isinstance(spec, float):
        return min(n, max(1, math.ceil(spec * n)))
    return min(n, int(spec))


def apply_phase(model, phase: Phase) -> str:
    """Set `trainable` flags for `phase`; returns a one-line description."""
    import keras

    set_trainable(model, True)
    backbone = find_backbone(model)
    if phase.trainable == "model" or backbone is None:
        return "all layers trainable"
    if phase.trainable == "head":
        set_trainable(backbone, False)
        return "backbone frozen, head trainable"
    layers = weighted_layers(backbone)
    n = unfreeze_count(phase.trainable, len(layers))
    for layer in layers[: len(layers) - n]:
        layer.trainable = False
    frozen_bn = 0
    for layer in layers[len(layers) - n:]:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # inference mode: keeps the pretrained statistics
            frozen_bn += 1
    return f"top {n} of {len(layers)} backbone layers trainable ({frozen_bn} BatchNorm kept frozen)"


def count_trainable(model) -> int:
    import numpy as np

    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def best_epoch_count(run_dir: Path, monitor: str, phase: int, fallback: int, mode: str = "min") -> int:
    """Epochs from the start of `phase` to its best smoothed `monitor` value in history.csv (`fallback` without one)."""
    import numpy as np
    import pandas as pd

    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return fallback
    h = pd.read_csv(path)
    rows = h[h["phase"] == phase] if "phase" in h else h
    if monitor not in rows or rows[monitor].isna().all():
        return fallback
    values = smoothed(rows[monitor].astype(float).to_numpy())
    return int(np.nanargmin(values) if mode == "min" else np.nanargmax(values)) + 1


def smoothed(values, window: int = SMOOTH_EPOCHS):
    """A centred running mean of a val curve (shorter at the ends, NaN skipped): on a few dozen val images
    the loss jumps by a tenth from one epoch to the next, so its single lowest epoch is mostly noise."""
    import pandas as pd

    return pd.Series(values, dtype=float).rolling(window, center=True, min_periods=1).mean().to_numpy()


def fit_phases(model, cfg: Config, *, run_dir: Path, state, strategy, train_ds, val_ds, steps: int, monitor: str,
               compiled, verbose: int, chief: bool, model_name: str, task, refit_ds=None, refit_steps=None,
               before_refit=None, recorder=None):
    """Fit every phase of the plan, resuming from `state` (a `resume.State`) when given; returns the model.

    `compiled` is the task's CompileSpec (loss, metrics, class weights); `task` compiles the model (`Task.compile`) and
    says whether its backbone is pretrained (`Task.pretrained`).
    A refit phase trains on `refit_ds` (train+val, `refit_steps` a epoch) from the initial weights;
    `before_refit(model)` sees the model that val chose, before it is replaced; `recorder` (kiln/doctor) is the first
    callback of every phase.
    """
    import dataclasses

    from kiln.train.callbacks import ResumeState, build_callbacks
    from kiln.train.optim import build_optimizer
    from kiln.train.resume import State, restore, truncate_history, write_state

    plan = plan_phases(cfg, model, model_name, task.pretrained(cfg, model_name))
    initial = model.get_weights() if any(p.refit for p in plan) else None  # the seeded initialisation
    epoch = state.epoch if state else 0
    if state is not None and state.phase > len(plan):  # e.g. finetune_epochs=0 on resume after phase 1
        restore(model, State(**{**state.__dict__, "optimizer": None}))
        return model
    for phase in plan:
        if state is not None and phase.index < state.phase:
            continue
        resuming = state is not None and phase.index == state.phase
        phase_monitor, phase_train, phase_val, phase_steps = monitor, train_ds, val_ds, steps
        if phase.refit:
            chosen = best_epoch_count(run_dir, monitor, phase.index - 1, fallback=epoch, mode=compiled.mode)
            # phase 1's own schedule (its planned length), stopped where val was best: the same learning-rate path
            # to the chosen epoch, on more data (a schedule squeezed into fewer epochs decays before the model learns)
            phase = dataclasses.replace(phase, epochs=max(1, chosen), schedule_epochs=plan[phase.index - 2].epochs)
            phase_monitor, phase_train, phase_val, phase_steps = monitor.removeprefix("val_"), refit_ds, None, refit_steps
        phase_cfg = phase.train_config(cfg.train.model_copy(update={"monitor": phase_monitor}))
        note = apply_phase(model, phase)
        if phase.refit:
            note = (f"refit: a fresh model on train+val for the {phase.epochs} epochs val chose "
                    f"(best {SMOOTH_EPOCHS}-epoch running mean of {monitor})")
        with strategy.scope():
            task.compile(model, build_optimizer(phase_cfg, phase_steps, phase.schedule_epochs or phase.epochs), compiled, cfg)
            if resuming:
                restore(model, state)  # weights, and optimizer state (with the schedule's position) mid-phase
            if phase.refit and (not resuming or state.epoch == state.phase_start):
                model.set_weights(initial)  # not yet started: begin from the initialisation, not from phase 1's weights
        start = state.phase_start if resuming else epoch
        end = start + phase.epochs
        if len(plan) > 1:
            print(f"kiln: phase {phase.index}/{len(plan)}: {note}; {count_trainable(model):,} trainable parameters, "
                  f"lr {phase.lr:g}, epochs {start + 1}-{end}", flush=True)
        finished = resuming and (state.stopped or epoch >= end)
        if resuming and finished:
            if state.best_weights is not None:  # early stopping would have restored them at the end of the phase
                model.set_weights(state.best_weights)
        elif epoch < end:
            if chief:
                truncate_history(run_dir / "history.csv", epoch)
            callbacks = build_callbacks(phase_cfg, run_dir, phase=phase.index, append=epoch > 0, writer=chief,
                                        mode=compiled.mode)
            tracker = ResumeState(run_dir, phase.index, start, callbacks, state if resuming else None, writer=chief,
                                  initial_epoch=epoch)
            model.fit(phase_train, validation_data=phase_val, initial_epoch=epoch, epochs=end, callbacks=[recorder] * (recorder is not None) + callbacks + [tracker],
                      shuffle=False, class_weight=compiled.class_weight, verbose=verbose)
            epoch = tracker.completed
        state = None
        if before_refit is not None and phase.index < len(plan) and plan[phase.index].refit:
            before_refit(model)
        if chief and phase.index < len(plan):
            # Phase boundary: the next phase starts from these (best) weights with a fresh optimizer.
            write_state(run_dir, model, phase=phase.index + 1, epoch=epoch, phase_start=epoch, optimizer=False)
    return model
