"""BestCheckpoint: the best epoch's model reaches disk, with writes spaced to a share of training time."""

import keras
import numpy as np

from kiln.train.callbacks import BestCheckpoint


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def _epoch(cb, model, value, metric, key="val_loss"):
    model.set_weights([np.full_like(w, value) for w in model.get_weights()])  # "training" moved the weights
    cb.on_epoch_end(0, {key: metric})


def test_best_epoch_is_written_even_when_writes_are_deferred(tmp_path):
    model, path = _model(), tmp_path / "best.keras"
    cb = BestCheckpoint(path, "val_loss", "min", budget=1e-9)  # any write is "too expensive" after the first
    cb.set_model(model)
    _epoch(cb, model, 1.0, 0.9)  # first improvement: written at once
    assert path.is_file() and keras.saving.load_model(path).get_weights()[0][0, 0] == 1.0
    _epoch(cb, model, 2.0, 0.5)  # better, but deferred: kept in memory
    _epoch(cb, model, 3.0, 0.7)  # worse: not the best
    assert keras.saving.load_model(path).get_weights()[0][0, 0] == 1.0 and cb.pending is not None
    cb.on_train_end()
    assert keras.saving.load_model(path).get_weights()[0][0, 0] == 2.0  # the best epoch, not the last
    assert model.get_weights()[0][0, 0] == 3.0  # the live model got its own weights back
    assert cb.pending is None and cb.best == 0.5


def test_cheap_writes_happen_at_every_improvement(tmp_path):
    model, path = _model(), tmp_path / "best.keras"
    cb = BestCheckpoint(path, "val_accuracy", "max", budget=1e9)
    cb.set_model(model)
    for value, acc in [(1.0, 0.5), (2.0, 0.6), (3.0, 0.55), (4.0, float("nan"))]:
        _epoch(cb, model, value, acc, "val_accuracy")
        if value == 2.0:
            assert keras.saving.load_model(path).get_weights()[0][0, 0] == 2.0 and cb.pending is None
    cb.on_train_end()
    assert keras.saving.load_model(path).get_weights()[0][0, 0] == 2.0 and cb.best == 0.6
    assert [p.name for p in tmp_path.iterdir()] == ["best.keras"]  # no temp file left behind
