"""BestCheckpoint: the best epoch's model reaches disk, written off the training thread, with writes spaced
to a share of training time."""

import threading

import keras
import numpy as np

from kiln.io import LatestWriter
from kiln.train import callbacks
from kiln.train.callbacks import BestCheckpoint


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)  # builds the optimizer's variables
    return model


def _epoch(cb, model, value, metric, key="val_loss"):
    model.set_weights([np.full_like(w, value) for w in model.get_weights()])  # "training" moved the weights
    cb.on_epoch_end(0, {key: metric})


def _saved(path):
    return keras.saving.load_model(path).get_weights()[0][0, 0]


def test_best_epoch_is_written_even_when_writes_are_deferred(tmp_path):
    model, path = _model(), tmp_path / "best.keras"
    cb = BestCheckpoint(path, "val_loss", "min", budget=1e-9)  # any write is "too expensive" after the first
    cb.set_model(model)
    _epoch(cb, model, 1.0, 0.9)  # first improvement: written at once
    assert path.is_file() and _saved(path) == 1.0
    _epoch(cb, model, 2.0, 0.5)  # better, but deferred: kept in memory
    _epoch(cb, model, 3.0, 0.7)  # worse: not the best
    cb.flush()
    assert _saved(path) == 1.0 and cb.pending is not None
    cb.on_train_end()
    assert _saved(path) == 2.0  # the best epoch, not the last
    assert model.get_weights()[0][0, 0] == 3.0  # the live model kept its own weights
    assert cb.pending is None and cb.best == 0.5


def test_writes_after_the_first_run_off_the_training_thread(tmp_path, monkeypatch):
    model, path = _model(), tmp_path / "best.keras"
    threads, real_save = [], callbacks.save_model

    def recording_save(m, dest):
        threads.append(threading.current_thread())
        return real_save(m, dest)

    monkeypatch.setattr(callbacks, "save_model", recording_save)
    cb = BestCheckpoint(path, "val_accuracy", "max", budget=1e9)  # writes are cheap enough for every improvement
    cb.set_model(model)
    for value, acc in [(1.0, 0.5), (2.0, 0.6), (3.0, 0.55), (4.0, float("nan")), (5.0, 0.7)]:
        _epoch(cb, model, value, acc, "val_accuracy")
        if value == 2.0:
            cb.flush()
            assert _saved(path) == 2.0 and cb.pending is None
    cb.on_train_end()
    assert _saved(path) == 5.0 and cb.best == 0.7
    assert len(threads) == 3 and threads[0] is threading.main_thread()
    assert all(t is not threading.main_thread() for t in threads[1:])
    assert [p.name for p in tmp_path.iterdir()] == ["best.keras"]  # no temp file left behind
    # the file is a whole compiled model: optimizer state of the best epoch included
    loaded = keras.saving.load_model(path)
    assert loaded.optimizer.iterations.numpy() == model.optimizer.iterations.numpy()


def test_latest_writer_keeps_order_drops_stale_jobs_and_reports_failures():
    writer, done, gate = LatestWriter("test"), [], threading.Event()
    writer.submit(lambda: (gate.wait(5), done.append(1)))  # running: holds the thread
    for i in (2, 3, 4):
        writer.submit(lambda i=i: done.append(i))  # 2 and 3 are replaced while waiting
    gate.set()
    writer.flush()
    assert done == [1, 4]

    def fail():
        raise OSError("disk full")

    writer.submit(fail)
    try:
        writer.close()
    except OSError as err:
        assert "disk full" in str(err)
    else:
        raise AssertionError("a failed write must raise")
