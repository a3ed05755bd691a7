"""kiln/train/ensemble.py: members train as if alone, predict as their mean, and survive save / load."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from kiln.train.ensemble import Ensemble, members_of  # noqa: E402


def _member(width, seed):
    keras.utils.set_random_seed(seed)
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(width, activation="relu")(x)
    return keras.Model(x, keras.layers.Dense(3, activation="softmax")(h))


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")


def test_each_member_trains_exactly_as_it_would_alone():
    x, y = _data()
    a, b = _member(8, 1), _member(5, 2)
    alone = [keras.models.clone_model(m) for m in (a, b)]
    for m, c in zip((a, b), alone):
        c.set_weights(m.get_weights())
        c.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        c.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    ens = Ensemble([a, b])
    ens.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    history = ens.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    for m, c in zip(ens.members, alone):  # plain SGD: each member got its own loss's gradient, at full size
        for w, v in zip(m.get_weights(), c.get_weights()):
            np.testing.assert_allclose(w, v, atol=1e-5)
    # the reported loss is the members' mean, not their sum
    assert history.history["loss"][-1] < 1.5


def test_predicts_and_evaluates_the_mean_of_its_members(tmp_path):
    x, y = _data()
    ens = Ensemble([_member(8, 1), _member(5, 2)], name="two")
    ens.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    ens.fit(x, y, epochs=2, verbose=0)
    p = ens.predict(x, verbose=0)
    mean = np.mean([m.predict(x, verbose=0) for m in members_of(ens)], axis=0)
    np.testing.assert_allclose(p, mean, atol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    loss, acc = ens.evaluate(x, y, verbose=0)
    want = keras.losses.SparseCategoricalCrossentropy()(y, mean)
    assert loss == pytest.approx(float(want), abs=1e-5)
    assert acc == pytest.approx(float(np.mean(mean.argmax(1) == y)))
    ens.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(back, Ensemble) and len(back.members) == 2 and back.name == "two"
    np.testing.assert_allclose(back.predict(x, verbose=0), p, atol=1e-6)
    back.fit(x, y, epochs=1, verbose=0)  # a loaded ensemble trains on (resume)
    assert members_of(_member(3, 0))[0].name != "two"


def test_inspect_sums_the_members():
    from kiln.inspect import inspect_model

    a, b = _member(8, 1), _member(5, 2)
    info = inspect_model(Ensemble([a, b]))
    assert info["total_params"] == a.count_params() + b.count_params()
    assert {r["name"].split("/")[0] for r in info["layers"]} == {"member0", "member1"}


def test_needs_a_member():
    with pytest.raises(ValueError):
        Ensemble([])


def test_a_fresh_process_loads_a_saved_ensemble(tmp_path):
    import subprocess
    import sys

    ens = Ensemble([_member(4, 1), _member(3, 2)])
    ens.save(tmp_path / "m.keras")
    code = f"from kiln.io import load_keras; m = load_keras({str(tmp_path / 'm.keras')!r}); print(type(m).__name__, len(m.members))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "Ensemble 2"
