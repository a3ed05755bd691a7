"""Kiln's run-folder callbacks: TensorBoard logs what Keras logs, once per epoch with no per-step work;
a NaN loss stops training."""

import keras
import numpy as np
import tensorflow as tf

from kiln.config.schema import TrainConfig
from kiln.train.callbacks import TensorBoard, build_callbacks


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def _data(n=64, nan=False):
    x = np.random.default_rng(0).normal(size=(n, 4)).astype("float32")
    y = keras.utils.to_categorical(np.arange(n) % 2, 2)
    if nan:
        y[n // 2:] = np.nan  # the loss turns NaN halfway through the first epoch
    return x, y


def _tags(folder):
    tags = []
    for f in folder.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            tags += [v.tag for v in event.summary.value]
    return tags


def test_tensorboard_logs_what_keras_logs_every_epoch(tmp_path):
    x, y = _data()
    for name, cls in (("kiln", TensorBoard), ("keras", keras.callbacks.TensorBoard)):
        _model().fit(x, y, validation_data=(x, y), epochs=3, batch_size=8, verbose=0,
                     callbacks=[cls(str(tmp_path / name), profile_batch=0)])
    for split in ("train", "validation"):
        tags = sorted(_tags(tmp_path / "kiln" / split))
        assert tags == sorted(_tags(tmp_path / "keras" / split))
        assert tags.count("epoch_loss") == 3 and tags.count("epoch_accuracy") == 3
    assert "keras" in _tags(tmp_path / "kiln" / "train")  # the model summary


def test_tensorboard_work_does_not_grow_with_steps(tmp_path):
    calls = {}
    x, y = _data()
    for batch_size in (32, 4):  # 2 and 16 steps an epoch
        cb = TensorBoard(str(tmp_path / str(batch_size)), profile_batch=0)
        module, count = cb.summary, [0]

        class Counting:
            def __getattr__(self, name):
                if name == "scalar":
                    count[0] += 1
                return getattr(module, name)

        cb._summary_module = Counting()
        _model().fit(x, y, validation_data=(x, y), epochs=2, batch_size=batch_size, verbose=0, callbacks=[cb])
        calls[batch_size] = count[0]
    assert calls[32] == calls[4] > 0


def test_nan_loss_stops_training_in_its_first_epoch(tmp_path):
    x, y = _data(n=640, nan=True)
    history = _model().fit(x, y, epochs=5, batch_size=8, verbose=0, shuffle=False,
                           callbacks=build_callbacks(TrainConfig(verbose=0, patience=0, tensorboard=False), tmp_path))
    assert len(history.epoch) == 1
    assert np.isnan(history.history["loss"][0])
