"""`auto` config values, resolved once from the data before the model is built.

Each decision is one `Decision(key, value, why)`: printed in one line when training starts and kept
in run.json under "auto", so the report can show why the run looks the way it does. The rules are
general (image side, dataset size, whether the model learns from scratch); none looks at a dataset's
name or content beyond that.

- `data.image_size` (decided in kiln/data/prepare.py, recorded here): the median side rounded up to 32,
  in [32, 128], at most 64 under 5,000 training images (each doubling costs 4x the time).
- `model.filters`: one conv block per halving of the side until 4-7 px are left (2-5 blocks), 32
  filters doubling to at most 256: the last feature map sees the whole image, whatever its size.
- `model.convs_per_block`: 2 with auto filters (VGG-style; 0.9933 instead of 0.9755 held out on half
  of the digits in the same recipe), 1 when the user chose the filters (the blocks they described).
- `train.epochs`: about 30,000 images seen (20-100 epochs). A small dataset needs more passes to get
  enough optimizer steps; a larger one gets fewer passes, so training time grows slowly with data.
- `train.patience`: half the epochs, at least 10: on a few hundred images val loss can stay above its
  first-epoch value for a dozen epochs while BatchNorm settles and the model finds the shapes (0.195
  held-out accuracy on 400 colour shapes with patience 10, stopped at epoch 11), and with a cosine
  schedule the loss still falls late in the run.
- `augment.translation/zoom/rotation`: mild (8 % shift, 5 % zoom, 7 degrees) for models trained from
  scratch when epochs is auto (the 30,000-image budget is sized for augmented data), where a few hundred images are too few to learn small shifts from. Flips and colour
  changes stay off: a mirrored 2, or a shape whose colour is its class, would change the label.
  Pretrained backbones get none (their features are already shift-tolerant; phases differ).
- `train.refit`: the val split picks the epoch (early stopping on val_loss), then a fresh model trains
  on train+val for that many epochs, so a tenth of a small dataset is not left out of the final model.
  It follows phase 1's schedule and stops at the chosen epoch (kiln/train/phases.py). On with epochs=auto
  for one-phase from-scratch runs with a val split (a run of a given length trains as asked); the val metrics come from the model that chose
  the epoch (kept before the refit), since the refit model has seen val.
"""

from __future__ import annotations

import math

from kiln.train.auto import EPOCHS_RANGE, Decision, record  # noqa: F401  (record: run.json's "auto")

IMAGE_PASSES = 30_000
MILD = {"translation": 0.08, "zoom": 0.05, "rotation": 0.02}


def auto_filters(side: int) -> list[int]:
    """A block per halving down to 4-7 px (2-5 blocks); 32 filters doubling, capped at 256."""
    blocks = int(min(5, max(2, math.floor(math.log2(max(side, 8) / 4)))))
    return [min(256, 32 * 2 ** i) for i in range(blocks)]


def auto_epochs(n_train: int) -> int:
    lo, hi = EPOCHS_RANGE
    return int(min(hi, max(lo, math.ceil(IMAGE_PASSES / max(1, n_train)))))


def auto_patience(epochs: int) -> int:
    return max(10, epochs // 2)


def resolve(cfg, *, spec, n_train: int, n_val: int, model_name: str, family: str, pretrained: bool, facts=None,
            own_size: int | None = None):
    """The config with every `auto` of the model, train and augment sections replaced, and the decisions."""
    from kiln.config.load import _flatten, load_config
    from kiln.tasks.image.data.prepare import max_auto_side

    side = min(spec.height, spec.width)
    scratch = family == "simple" or not pretrained
    out: list[Decision] = []
    if facts is not None and cfg.data.image_size == "auto":
        why = f"{model_name}'s own input size" if own_size else _size_why(facts, max_auto_side(n_train))
        out.append(Decision("data.image_size", spec.height, why))
    if facts is not None and cfg.data.channels == "auto":
        out.append(Decision("data.channels", spec.channels, "every image is grey" if spec.channels == 1 else
                            ("the model takes RGB" if family != "simple" else "some images have colour")))
    m, t, a = cfg.model, cfg.train, cfg.augment
    if m.filters == "auto":
        filters = auto_filters(side)
        why = f"{len(filters)} blocks halve {side} px to {side // 2 ** len(filters)} px"
        out.append(Decision("model.filters", filters, why if model_name == "cnn" else f"{why}; unused by {model_name}"))
    if m.convs_per_block == "auto":
        convs = 2 if m.filters == "auto" else 1
        why = ("two 3x3 convs a block (VGG-style): a wider view and more non-linearity per halving" if convs == 2
               else "the blocks of the filters you chose, one conv each")
        out.append(Decision("model.convs_per_block", convs, why if model_name == "cnn" else f"{why}; unused by {model_name}"))
    if t.epochs == "auto":
        epochs = auto_epochs(n_train)
        out.append(Decision("train.epochs", epochs, f"{n_train} training images: ~{IMAGE_PASSES:,} images seen, "
                                                     f"kept in [{EPOCHS_RANGE[0]}, {EPOCHS_RANGE[1]}]"))
    epochs = next((d.value for d in out if d.key == "train.epochs"), t.epochs)
    if t.patience == "auto":
        out.append(Decision("train.patience", auto_patience(epochs), f"half of {epochs} epochs, at least 10: val loss can sit above its first value for many epochs while a small model settles"))
    budget = t.epochs == "auto"  # augmentation and the refit belong to Kiln's own training budget
    for key, mild in MILD.items():
        if getattr(a, key) == "auto":
            on = scratch and budget
            why = ("mild and label-preserving for a model learning from scratch" if on else
                   "pretrained backbone" if not scratch else "epochs was given: the run trains as asked")
            out.append(Decision(f"augment.{key}", mild if on else 0.0, why))
    if t.refit == "auto":
        one_phase = scratch and t.phases != 2
        on = one_phase and n_val > 0 and budget
        why = (f"val ({n_val} images) chooses the epoch, then trains too" if on else
               "two-phase fine-tuning keeps its val split" if not one_phase else
               "no val split to choose the epoch" if n_val == 0 else "epochs was given: the run trains as asked")
        out.append(Decision("train.refit", on, why))
    flat = _flatten(cfg.model_dump(mode="json"))
    flat.update({d.key: d.value for d in out if not d.key.startswith("data.")})
    return load_config(overrides=flat), out


def _size_why(facts, max_side: int) -> str:
    import numpy as np

    ok = facts[facts["ok"]] if "ok" in facts else facts
    if ok.empty:
        return "no image sizes known"
    side = float(np.median(np.sqrt(ok["width"].to_numpy() * ok["height"].to_numpy())))
    return f"median image side {side:.0f} px, rounded up to 32 and kept in [32, {max_side}]"
