"""The table task's `auto` decisions, resolved once from the data before the model is built.

Each is one `Decision(key, value, why)`: printed in one line when training starts and kept in
run.json "auto". The rules look only at the size of the training split, never at a table's name.

- `table.batch_rows` (and `data.batch_size`, which the spine trainer reads): train rows / 50, kept
  in [32, 2048]. A small table gets many small steps; a large one large steps, so an epoch of 80,000
  rows is 50 steps of 1,600, not 100 of 800 (per-step overhead, not arithmetic, is most of a small model's time).
- `train.epochs`: about 1,500 optimizer steps for small tables (more passes over few rows), kept in
  [5, 150]; about 500,000 rows seen for large ones, so time grows slowly with data (80,000 training
  rows: 7 epochs; val accuracy had levelled off by epoch 8 of 13 with BatchNorm momentum 0.99, and
  models.py's momentum 0.9 from 20,000 training rows lets them catch up within an epoch).
- `train.patience`: a quarter of the epochs, in [5, 20]: a long run on few rows has a noisy val loss,
  a short run on many rows gets a clear signal from each epoch.
- `train.patience` for `linear`: 0 (no early stopping; the cosine schedule runs to its end). The loss is
  convex, so there is no overfitting path to cut; stopping at the best epoch of a 44-row val split left
  diabetes short of least squares (seed 4: 0.344 test R² vs 0.373 without stopping; ridge 0.379).
- `train.lr` for `linear`, when left at the default 1e-3: 1e-2. A linear model's loss is convex and
  it has few weights; at 1e-3 a softmax regression on 142 rows (wine) had not converged after 750
  steps (0.89 test accuracy vs scikit-learn's 1.00), at 1e-2 it matches.
- `model.dropout` for `dnn` / `resnet_plr` below 20,000 training rows, when left at its default and
  epochs is auto: 0.3 (the models' own default is 0.1). It goes with the long auto budget of small
  tables; a run of a given length trains as asked (a 20-epoch run on 320 rows underfits at 0.3). On three seeds of five real tables of 300–1,500 rows it raised the
  mean test score of diabetes 0.397 -> 0.476 R², penguins 0.962 -> 0.981, weather 0.757 -> 0.762 and
  cars 0.854 -> 0.855, and lowered breast cancer 0.947 -> 0.936 (three test rows on one seed); a large
  table has data enough.
- `model.name` (model=auto): `linear`, `tabm` or `resnet_plr`, chosen in kiln/tasks/table/choose.py by
  cross-validating the linear and HistGB baselines on the training rows (the decision is made in `analyse`,
  recorded here).
- `model.l2` for `linear` classification, when l1 and l2 are left at 0: 1 / (2 x training rows), scikit-learn
  LogisticRegression's C=1. Unpenalised, softmax regression on penguins (seed 1) stopped at 0.943 test
  accuracy (two rows of 35) while scikit-learn had 1.000; with the penalty it has 1.000 too.
- `train.refit`: off. The table task keeps val for the decision threshold of two classes and for
  the epoch early stopping chose; the model that val chose is the one exported.
"""

from __future__ import annotations

import math

from kiln.train.auto import Decision

BATCH_RANGE = (32, 2048)
ROWS_PER_STEP = 50  # train rows / this = rows per step
STEPS_SMALL = 1500  # optimizer steps a small table gets
ROWS_SEEN = 500_000  # rows seen by a large table's run
EPOCHS_MIN, EPOCHS_MAX = 5, 150
PATIENCE_RANGE = (5, 20)
LR_LINEAR = 1e-2
DROPOUT_SMALL, SMALL_ROWS = 0.3, 20_000


def batch_rows(cfg, n_train: int) -> int:
    """Rows per step: `table.batch_rows`, or for auto train rows / 50 kept in [32, 2048].

    Moved here from kiln/tasks/table/train.py so the rule outlives that module."""
    b = cfg.table.batch_rows
    return auto_batch_rows(n_train) if b == "auto" else int(b)


def auto_batch_rows(n_train: int) -> int:
    lo, hi = BATCH_RANGE
    return int(min(hi, max(lo, n_train // ROWS_PER_STEP)))


def auto_epochs(n_train: int, batch: int) -> int:
    steps = max(1, math.ceil(n_train / batch))
    by_steps = math.ceil(STEPS_SMALL / steps)
    by_rows = math.ceil(ROWS_SEEN / max(1, n_train))
    return int(min(EPOCHS_MAX, max(EPOCHS_MIN, min(by_steps, by_rows))))


def auto_patience(epochs: int) -> int:
    lo, hi = PATIENCE_RANGE
    return int(min(hi, max(lo, epochs // 4)))


def linear_l2(n_train: int) -> float:
    """The L2 weight of `linear` classification: 1 / (2 n), so the mean loss + l2 |w|² is scikit-learn's
    0.5 |w|² + C x summed log loss at C=1 divided by n: the same minimum as the baseline it must match."""
    return round(1.0 / (2 * max(1, n_train)), 6)


def resolve_auto(task, cfg, data, model_name: str):
    """(config with the table's `auto` values replaced, [Decision]); config.yaml keeps `auto`."""
    from kiln.config.load import _flatten, load_config

    from kiln.tasks.table.models import auto_model

    n_train = int((data.rows["split"] == "train").sum())
    model_name = auto_model(n_train) if model_name == "auto" else model_name
    t = cfg.train
    out: list[Decision] = []
    why = getattr(data, "extra", {}).get("model_why")
    if why and cfg.model.name == "auto":
        out.append(Decision("model.name", model_name, why))
    batch = batch_rows(cfg, n_train)
    if cfg.table.batch_rows == "auto":
        out.append(Decision("table.batch_rows", batch, f"{n_train} training rows / {ROWS_PER_STEP}, kept in [{BATCH_RANGE[0]}, {BATCH_RANGE[1]}]"))
    if cfg.data.batch_size != batch and cfg.data.batch_size == type(cfg.data).model_fields["batch_size"].default:
        out.append(Decision("data.batch_size", batch, "the rows per step of table.batch_rows"))
    if t.epochs == "auto":
        epochs = auto_epochs(n_train, batch)
        steps = math.ceil(n_train / batch)
        out.append(Decision("train.epochs", epochs, f"{steps} steps an epoch: ~{STEPS_SMALL:,} steps or ~{ROWS_SEEN:,} rows seen, "
                                                    f"whichever is less, kept in [{EPOCHS_MIN}, {EPOCHS_MAX}]"))
    epochs = next((d.value for d in out if d.key == "train.epochs"), t.epochs)
    if t.patience == "auto" and model_name == "linear":
        out.append(Decision("train.patience", 0, "a linear model's loss is convex: the whole schedule ends at its optimum, "
                                                 "early stopping on a small val split stops short of it"))
    elif t.patience == "auto":
        out.append(Decision("train.patience", auto_patience(int(epochs)), f"a quarter of {epochs} epochs, kept in "
                                                                          f"[{PATIENCE_RANGE[0]}, {PATIENCE_RANGE[1]}]"))
    if model_name == "linear" and t.lr == type(t).model_fields["lr"].default:
        out.append(Decision("train.lr", LR_LINEAR, "a linear model's convex loss takes larger steps than a deep net's default"))
    m = cfg.model
    if model_name == "linear" and getattr(getattr(data, "spec", None), "task", None) == "classification" and m.l2 == 0 and m.l1 == 0:
        out.append(Decision("model.l2", linear_l2(n_train), f"1 / (2 x {n_train} training rows): scikit-learn LogisticRegression's "
                                                            "default penalty (C=1) on a mean loss"))
    if (model_name in ("dnn", "resnet_plr") and n_train < SMALL_ROWS and t.epochs == "auto"
            and m.dropout == "auto"):
        out.append(Decision("model.dropout", DROPOUT_SMALL, f"{n_train} training rows (< {SMALL_ROWS:,}): more dropout against overfitting"))
    if t.refit == "auto":
        out.append(Decision("train.refit", False, "tables keep val for the threshold and the stopping epoch"))
    if not out:
        return cfg, out
    flat = _flatten(cfg.model_dump(mode="json"))
    flat.update({d.key: d.value for d in out})
    return load_config(overrides=flat), out


__all__ = ["auto_batch_rows", "auto_epochs", "auto_patience", "batch_rows", "linear_l2", "resolve_auto"]
