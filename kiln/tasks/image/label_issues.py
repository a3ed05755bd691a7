"""`kiln label-issues RUN_DIR [method=cv|fast] [folds=5] [epochs=N]`: training images whose label is probably wrong.

Confident learning (Northcutt et al., 2021, via cleanlab) needs out-of-sample predicted
probabilities for every training image, i.e. from a model that did not train on that image:

- `method=cv` (default): k-fold cross-validation on the training split. The run's model config is
  trained from scratch `folds` times (on k-1 folds, up to `epochs` epochs, one phase) and predicts the
  held-out fold. As in the run, the weights of the epoch with the best loss on the run's own val split
  are kept (val images are never training images, so no held-out label leaks in). Honest, and costs
  about `folds` trainings.
- `method=fast`: features from the run's trained model (the input of its "predictions" layer) and a
  k-fold logistic regression on them. Seconds instead of trainings, but the features were learned
  with the very labels under test, so a network that memorised a wrong label hides it; use it to
  triage, `cv` to decide.

cleanlab's `filter.find_label_issues` flags the issues; `rank.get_label_quality_scores`
(self-confidence: the out-of-sample probability of the given label) orders them. Writes
RUN/label_issues.csv (every training image, lowest quality first: path, label, suggested,
label_quality, p_label, p_suggested, is_issue) and RUN/label_issues.json (method, counts), then
refreshes RUN/report.html, which shows the flagged images as a gallery. Files are never moved or relabelled.

    from kiln.tasks.image.label_issues import find_label_issues
    table = find_label_issues(kiln.load_run("runs/train"), method="fast")
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from kiln.errors import ConfigError, DataError, received

log = logging.getLogger("kiln.label_issues")

METHODS = ("cv", "fast")


def _folds_for(y: np.ndarray, folds: int, k: int) -> int:
    counts = np.bincount(y, minlength=k)
    present = counts[counts > 0]
    usable = int(min(folds, present.min()))
    if usable < 2:
        small = int(np.argmin(np.where(counts > 0, counts, 10**9)))
        raise DataError(received("label-issues", "folds", folds, f"class {small} has only {present.min()} training image(s)",
                                 "Each class needs at least 2 training images for out-of-sample predictions"))
    if usable < folds:
        log.warning("label-issues: the smallest class has %d training images; using %d folds instead of %d",
                    present.min(), usable, folds)
    return usable


def _splitter(y: np.ndarray, folds: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)


def cv_probabilities(run, paths: list[str], y: np.ndarray, folds: int = 5, epochs: int | None = None,
                     batch_size: int | None = None, seed: int | None = None, val=None) -> np.ndarray:
    """(N, K) out-of-sample probabilities: the run's model config retrained per fold.

    `val`: (paths, labels) for early stopping with best-weights restore (the run's val split).
    """
    import keras

    from kiln.tasks.image.data.pipeline import make_dataset
    from kiln.tasks.image.models import create_model
    from kiln.train.optim import build_optimizer

    cfg = run.config
    spec, k = run.spec, len(run.classes)
    seed = cfg.seed if seed is None else seed
    epochs = int(epochs or cfg.train.epochs)
    batch_size = int(batch_size or cfg.data.batch_size)
    augment = None
    if getattr(cfg, "augment", None) is not None:
        try:
            from kiln.tasks.image.data.augment import build_augment

            augment = build_augment(cfg.image.augment, spec.size, spec.channels, seed)
        except ImportError:
            augment = None
    from kiln.tasks.image.config import model_kwargs as image_model_kwargs

    model_kwargs = image_model_kwargs(cfg)
    paths = np.asarray(paths)
    probs = np.zeros((len(y), k), np.float32)
    for fold, (fit_idx, held_idx) in enumerate(_splitter(y, folds, seed)):
        started = time.time()
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed + fold)
        model = create_model(run.meta["model"], spec.shape, k, **model_kwargs)
        steps = int(np.ceil(len(fit_idx) / batch_size))
        model.compile(optimizer=build_optimizer(cfg.train.model_copy(update={"epochs": epochs}), steps),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.train.label_smoothing))
        train_ds = make_dataset(paths[fit_idx], y[fit_idx], k, size=spec.size, channels=spec.channels, resize=spec.resize,
                                background=spec.alpha_background, batch_size=batch_size, training=True, seed=seed, cache="memory", augment=augment)
        callbacks, val_ds = [], None
        if val is not None and len(val[0]):
            val_ds = make_dataset(np.asarray(val[0]), np.asarray(val[1]), k, size=spec.size, channels=spec.channels,
                                  resize=spec.resize, batch_size=batch_size, cache="memory", background=spec.alpha_background)
            callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.train.patience or epochs,
                                                       restore_best_weights=True)]
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=0)
        held_ds = make_dataset(paths[held_idx], y[held_idx], k, size=spec.size, channels=spec.channels, resize=spec.resize,
                               batch_size=batch_size, background=spec.alpha_background).map(lambda x, _: x)
        probs[held_idx] = model.predict(held_ds, verbose=0)
        log.info("label-issues: fold %d/%d trained on %d images in %.1f s", fold + 1, folds, len(fit_idx), time.time() - started)
    keras.backend.clear_session()
    return probs


def feature_probabilities(run, paths: list[str], y: np.ndarray, folds: int = 5, seed: int | None = None) -> np.ndarray:
    """(N, K) out-of-fold probabilities of a logistic regression on the trained model's penultimate features."""
    import keras
    from sklearn.linear_model import LogisticRegression

    from kiln.tasks.image.predict import dataset
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = run.model
    try:
        head = model.get_layer("predictions")
    except ValueError:
        raise ConfigError(received("label-issues", "method", "fast", "the model has no layer named predictions",
                                   "Use method=cv")) from None
    extractor = keras.Model(model.inputs, head.input)
    ds = dataset(run, list(paths), batch_size=64).map(lambda x, _: x)
    features = np.asarray(extractor.predict(ds, verbose=0), np.float64).reshape(len(paths), -1)
    k = len(run.classes)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    from sklearn.model_selection import StratifiedKFold

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=run.config.seed if seed is None else seed)
    oof = cross_val_predict(clf, features, y, cv=cv, method="predict_proba")
    present = np.unique(y)
    probs = np.zeros((len(y), k))
    probs[:, present] = oof  # classes absent from training get probability 0
    return probs


def rank_issues(paths, y: np.ndarray, probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """cleanlab flags and label-quality scores -> one row per image, lowest label quality first."""
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    probs = np.clip(np.asarray(probs, np.float64), 1e-9, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    flagged = cl_find(labels=y, pred_probs=probs, filter_by="prune_by_noise_rate")
    quality = get_label_quality_scores(y, probs, method="self_confidence")
    suggested = probs.argmax(axis=1)
    idx = np.arange(len(y))
    table = pd.DataFrame({
        "path": list(paths), "label": [classes[i] for i in y], "suggested": [classes[i] for i in suggested],
        "label_quality": quality, "p_label": probs[idx, y], "p_suggested": probs[idx, suggested], "is_issue": flagged,
    })
    table = table.sort_values(["is_issue", "label_quality"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def find_label_issues(run, method: str = "cv", folds: int = 5, epochs: int | None = None, batch_size: int | None = None,
                      report: bool = True) -> pd.DataFrame:
    """Rank the run's training images by how likely their label is wrong; write label_issues.csv/.json."""
    from kiln.io import write_json, write_text
    from kiln.run import Run, load_run

    run = run if isinstance(run, Run) else load_run(run)
    if not run.classes:
        raise ConfigError(received("label-issues", "RUN_DIR", run.path, "it predicts a number (image regression), and label issues "
                                   "rank class labels", "Look at the largest residuals in its report instead (kiln report RUN_DIR)"))
    if method not in METHODS:
        raise ConfigError(received("label-issues", "method", method, "no such method", "Use method=cv or method=fast"))
    if folds < 2:
        raise ConfigError(received("label-issues", "folds", folds, "cross-validation needs at least 2 folds", "Example: folds=5"))
    if epochs is not None and epochs < 1:
        raise ConfigError(received("label-issues", "epochs", epochs, "it must be at least 1", "Example: epochs=10"))
    table = run.splits
    rows = table[table["split"] == "train"].reset_index(drop=True)
    if rows.empty:
        raise DataError(received("label-issues", "RUN_DIR", run.path, "the run has no training images listed in splits.csv",
                                 "Pass a run folder written by kiln train"))
    index = {c: i for i, c in enumerate(run.classes)}
    y = rows["label"].map(index).to_numpy().astype(int)
    k = len(run.classes)
    folds = _folds_for(y, folds, k)
    started = time.time()
    if method == "cv":
        val_rows = table[table["split"] == "val"]
        val = (val_rows["path"].tolist(), val_rows["label"].map(index).to_numpy().astype(int))
        probs = cv_probabilities(run, rows["path"].tolist(), y, folds, epochs, batch_size, val=val)
    else:
        probs = feature_probabilities(run, rows["path"].tolist(), y, folds)
    result = rank_issues(rows["path"].tolist(), y, probs, run.classes)
    n_issues = int(result["is_issue"].sum())
    write_text(run.path / "label_issues.csv", result.to_csv(index=False))
    write_json(run.path / "label_issues.json", {
        "method": method, "folds": folds, "epochs": (int(epochs or run.config.train.epochs) if method == "cv" else None),
        "n": int(len(result)), "issues": n_issues, "oos_accuracy": float((probs.argmax(1) == y).mean()),
        "seconds": round(time.time() - started, 1),
    })
    print(f"kiln: {n_issues} of {len(result)} training labels look wrong ({method}, {folds} folds); "
          f"{run.path / 'label_issues.csv'}", flush=True)
    if report:
        try:
            from kiln.evaluate.report import write_report

            write_report(run)
        except Exception as err:  # the CSV is written; a report problem only warns
            log.warning("label-issues: report.html was not refreshed (%s: %s)", type(err).__name__, err)
    return result


__all__ = ["cv_probabilities", "feature_probabilities", "find_label_issues", "rank_issues"]
