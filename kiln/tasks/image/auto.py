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
  scratch when epochs is auto (the 30,000-image budget is sized for augmented data), where a few hundred
  images are too few to learn small shifts from. Flips stay off: a mirrored 2 would change the label.
  Pretrained backbones get none (their features are already shift-tolerant; phases differ).
- `augment.hue/saturation`: 0.5 / 0.3 on the same runs when the images are RGB and their hues do not
  predict the class (a hue-histogram classifier is within noise of the largest class's share): a model
  learning from a few hundred images of random colours memorises the colours (0.17 held out on 200 colour
  shapes of 96 px without, 0.615 with). Off where colour tells the classes apart, as it may be the class.
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
COLOUR = {"hue": 0.5, "saturation": 0.3}  # on when the images' hues say nothing of the class (colour_signal)
COLOUR_SAMPLE = 600  # training images whose hue histograms are looked at


def auto_filters(side: int) -> list[int]:
    """A block per halving down to 4-7 px (2-5 blocks); 32 filters doubling, capped at 256."""
    blocks = int(min(5, max(2, math.floor(math.log2(max(side, 8) / 4)))))
    return [min(256, 32 * 2 ** i) for i in range(blocks)]


def auto_epochs(n_train: int) -> int:
    lo, hi = EPOCHS_RANGE
    return int(min(hi, max(lo, math.ceil(IMAGE_PASSES / max(1, n_train)))))


def auto_patience(epochs: int) -> int:
    return max(10, epochs // 2)

SPEC_KEYS = ("image.image_size", "image.channels")  # decided into the spec (run.json), not the config


def resolve(cfg, *, spec, n_train: int, n_val: int, model_name: str, family: str, pretrained: bool, facts=None,
            own_size: int | None = None, rows=None, regression: bool = False):
    """The config with every `auto` of the model, train and augment sections replaced, and the decisions.
    `rows`: the training split's `path` and `y` (the colour check reads a sample of them). `regression` (a numeric
    target): shifts, zooms, turns and colour changes stay off, as they may change the value (a turned photo has
    another angle)."""
    from kiln.config.load import _flatten, load_config
    from kiln.tasks.image.data.prepare import max_auto_side

    side = min(spec.height, spec.width)
    scratch = family == "simple" or not pretrained
    out: list[Decision] = []
    if facts is not None and cfg.image.image_size == "auto":
        why = f"{model_name}'s own input size" if own_size else _size_why(facts, max_auto_side(n_train))
        out.append(Decision("image.image_size", spec.height, why))
    if facts is not None and cfg.image.channels == "auto":
        out.append(Decision("image.channels", spec.channels, "every image is grey" if spec.channels == 1 else
                            ("the model takes RGB" if family != "simple" else "some images have colour")))
    m, t, a = cfg.image, cfg.train, cfg.image.augment
    if m.filters == "auto":
        filters = auto_filters(side)
        why = f"{len(filters)} blocks halve {side} px to {side // 2 ** len(filters)} px"
        out.append(Decision("image.filters", filters, why if model_name == "cnn" else f"{why}; unused by {model_name}"))
    if m.convs_per_block == "auto":
        convs = 2 if m.filters == "auto" else 1
        why = ("two 3x3 convs a block (VGG-style): a wider view and more non-linearity per halving" if convs == 2
               else "the blocks of the filters you chose, one conv each")
        out.append(Decision("image.convs_per_block", convs, why if model_name == "cnn" else f"{why}; unused by {model_name}"))
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
            on = scratch and budget and not regression
            why = ("mild and label-preserving for a model learning from scratch" if on else
                   "a numeric target may change with the image (a turned photo has another angle)" if regression else
                   "pretrained backbone" if not scratch else "epochs was given: the run trains as asked")
            out.append(Decision(f"image.augment.{key}", mild if on else 0.0, why))
    colour = [k for k in COLOUR if getattr(a, k) == "auto"]
    if colour:
        on, why = (False, "a numeric target may change with the colours") if regression else \
            _colour_decision(spec.channels, scratch, budget, rows)
        out.extend(Decision(f"image.augment.{k}", COLOUR[k] if on else 0.0, why) for k in colour)
    if t.refit == "auto":
        one_phase = scratch and t.phases != 2
        on = one_phase and n_val > 0 and budget
        why = (f"val ({n_val} images) chooses the epoch, then trains too" if on else
               "two-phase fine-tuning keeps its val split" if not one_phase else
               "no val split to choose the epoch" if n_val == 0 else "epochs was given: the run trains as asked")
        out.append(Decision("train.refit", on, why))
    flat = _flatten(cfg.model_dump(mode="json"))
    flat.update({d.key: d.value for d in out if d.key not in SPEC_KEYS})
    return load_config(overrides=flat), out


def colour_signal(paths, labels, seed: int = 0) -> tuple[float, float]:
    """(3-fold accuracy of a logistic regression on each image's hue histogram, the largest class's share).

    12 hue bins, each pixel weighted by its saturation x value (grey pixels have no hue), on at most
    COLOUR_SAMPLE images decoded at a 32 px thumbnail: a few seconds whatever the dataset's size."""
    import numpy as np
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    paths, labels = np.asarray(paths), np.asarray(labels)
    if len(paths) > COLOUR_SAMPLE:
        keep = np.random.default_rng(seed).choice(len(paths), COLOUR_SAMPLE, replace=False)
        paths, labels = paths[keep], labels[keep]
    feats = []
    for path in paths:
        with Image.open(path) as im:
            im.draft("RGB", (64, 64))  # JPEG: decode at a reduced scale
            im = im.convert("RGB")
            im.thumbnail((32, 32))
            hsv = np.asarray(im.convert("HSV"), dtype=np.float32).reshape(-1, 3) / 255.0
        hist = np.histogram(hsv[:, 0], bins=12, range=(0, 1), weights=hsv[:, 1] * hsv[:, 2])[0]
        feats.append(hist / max(1e-6, hist.sum()))
    _, counts = np.unique(labels, return_counts=True)
    cv = StratifiedKFold(3, shuffle=True, random_state=seed)
    acc = float(cross_val_score(LogisticRegression(max_iter=500), np.stack(feats), labels, cv=cv).mean())
    return acc, float(counts.max() / len(labels))


def colour_tells_class(acc: float, majority: float, n: int) -> bool:
    """Hue predicts the class when the histogram classifier beats the largest class's share by more than
    two standard errors of an accuracy on n images (and by at least 5 points)."""
    return acc > majority + max(0.05, 2 * math.sqrt(majority * (1 - majority) / max(1, n)))


def _colour_decision(channels: int, scratch: bool, budget: bool, rows) -> tuple[bool, str]:
    """Hue and saturation changes: on only for RGB images whose hues say nothing of the class. A model
    learning from a few hundred images of random colours otherwise memorises the colours (0.17 held out
    on 200 colour shapes of 96 px; 0.6+ val with the colour changes, bench/defaults.py)."""
    if channels != 3:
        return False, "the images are grey"
    if not (scratch and budget):
        return False, "pretrained backbone" if not scratch else "epochs was given: the run trains as asked"
    if rows is None or not len(rows) or rows["y"].value_counts().min() < 3 or "record" in rows:
        return False, "too few images of a class (or packed shards) to check that colour is not the class"
    try:
        acc, majority = colour_signal(rows["path"].tolist(), rows["y"].to_numpy())
    except (OSError, ValueError) as err:
        return False, f"colour could not be checked ({type(err).__name__}): kept off, colour may be the class"
    n = min(len(rows), COLOUR_SAMPLE)
    if colour_tells_class(acc, majority, n):
        return False, f"colour tells the classes apart (hue-histogram classifier {acc:.2f}, largest class {majority:.2f})"
    return True, (f"hue says nothing of the class (hue-histogram classifier {acc:.2f}, largest class {majority:.2f}): "
                  f"colour changes keep a model from memorising colours")


def _size_why(facts, max_side: int) -> str:
    import numpy as np

    ok = facts[facts["ok"]] if "ok" in facts else facts
    if ok.empty:
        return "no image sizes known"
    side = float(np.median(np.sqrt(ok["width"].to_numpy() * ok["height"].to_numpy())))
    return f"median image side {side:.0f} px, rounded up to 32 and kept in [32, {max_side}]"
