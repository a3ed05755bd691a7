"""Two-phase fine-tuning: the plan, what each phase trains (BatchNorm stays frozen), history's phase
column; and precision / jit_compile on a CPU."""

import keras
import numpy as np
import pytest

import kiln
from kiln.config import load_config
from kiln.errors import ConfigError
from kiln.tasks.image.models import create_model, registry
from kiln.tasks.base import get_task
from kiln.train.phases import Phase, apply_phase, find_backbone, plan_phases, weighted_layers

NAME = "test_tiny_backbone"


def _tiny_backbone(input_shape, num_classes, dropout: float = 0.0):
    """image -> Rescaling -> backbone (conv-BN-relu x2, GAP) -> predictions."""
    inputs = keras.Input(shape=input_shape, name="image")
    b_in = keras.Input(shape=input_shape)
    x = keras.layers.Rescaling(1.0 / 255)(b_in)
    for i in (1, 2):
        x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    backbone = keras.Model(b_in, x, name="backbone")
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(backbone(inputs))
    return keras.Model(inputs, outputs, name=NAME)


@pytest.fixture(autouse=True, scope="module")
def tiny_family():
    registry.register_model(NAME, family="test", pretrained=True)(_tiny_backbone)
    yield
    registry._REGISTRY.pop(NAME, None)


def _weights(layer):
    return [np.array(w) for w in layer.weights]


def _changed(before, after) -> bool:
    return any(not np.allclose(a, b) for a, b in zip(before, after))


def test_plan():
    tiny, cnn = create_model(NAME, (16, 16, 3), 3), create_model("cnn", (16, 16, 3), 3, filters=[4], units=[])
    cfg = load_config(overrides={"model": NAME, "epochs": 3, "finetune_epochs": 2, "lr": 0.01, "finetune_lr": 0.001})
    image = get_task("image")
    p1, p2 = plan_phases(cfg, tiny, NAME, image.pretrained(cfg, NAME))
    assert (p1.index, p1.epochs, p1.lr, p1.trainable) == (1, 3, 0.01, "head")
    assert (p2.index, p2.epochs, p2.lr, p2.trainable) == (2, 2, 0.001, "all")
    scratch = load_config(overrides={"model": NAME, "weights": "none"})
    assert not image.pretrained(scratch, NAME) and len(plan_phases(scratch, tiny, NAME, image.pretrained(scratch, NAME))) == 1
    assert [p.trainable for p in plan_phases(cfg, cnn, "cnn")] == ["model"]  # no backbone: one phase
    with pytest.raises(ConfigError, match="has no 'backbone' layer"):
        plan_phases(load_config(overrides={"phases": 2}), cnn, "cnn")


def test_each_phase_trains_only_what_it_should():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (64, 16, 16, 3)).astype("uint8")
    y = keras.utils.to_categorical(rng.integers(0, 3, 64), 3)
    model = create_model(NAME, (16, 16, 3), 3)
    backbone = find_backbone(model)
    conv1, bn1, conv2, bn2 = weighted_layers(backbone)

    def fit(phase):
        note = apply_phase(model, phase)
        model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
        before = {layer.name: _weights(layer) for layer in (conv1, bn1, conv2, bn2, model.get_layer("predictions"))}
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
        return note, {name: _changed(w, _weights(model.get_layer("predictions") if name == "predictions" else backbone.get_layer(name)))
                      for name, w in before.items()}

    note, changed = fit(Phase(1, 1, 0.1, 0, "head"))
    assert note == "backbone frozen, head trainable"
    assert changed == {"conv1": False, "bn1": False, "conv2": False, "bn2": False, "predictions": True}
    note, changed = fit(Phase(2, 1, 0.1, 0, 2))  # top 2 weighted layers: conv2 and bn2 (BN stays frozen)
    assert note == "top 2 of 4 backbone layers trainable (1 BatchNorm kept frozen)"
    assert changed == {"conv1": False, "bn1": False, "conv2": True, "bn2": False, "predictions": True}
    note, changed = fit(Phase(2, 1, 0.1, 0, "all"))
    assert changed == {"conv1": True, "bn1": False, "conv2": True, "bn2": False, "predictions": True}
    assert fit(Phase(2, 1, 0.1, 0, 0.25))[0].startswith("top 1 of 4")
    note, changed = fit(Phase(1, 1, 0.1, 0, "model"))  # one-phase training: everything, BatchNorm included
    assert all(changed.values())


def test_two_phase_run_history(tmp_path, shapes_dir):
    run = kiln.train(data=str(shapes_dir), run_dir=str(tmp_path / "run"), model=NAME, image_size=16, epochs=3,
                     finetune_epochs=2, lr=0.01, finetune_lr=0.001, schedule="constant", unfreeze=2, seed=1,
                     train={"verbose": 0, "tensorboard": False}, evaluate={"report": False})
    h = run.history
    assert h["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert h["phase"].tolist() == [1, 1, 1, 2, 2]
    np.testing.assert_allclose(h["lr"], [0.01] * 3 + [0.001] * 2, rtol=1e-5)
    assert not (run.path / "state").exists()
    assert run.model.get_layer("backbone").get_layer("bn2").trainable is False  # as saved after phase 2


@pytest.mark.parametrize("precision, jit", [("mixed_bfloat16", True), ("mixed_float16", False)])
def test_precision_and_jit_compile_train_on_cpu(tmp_path, shapes_dir, precision, jit):
    run = kiln.train(data=str(shapes_dir), run_dir=str(tmp_path / "run"), image_size=16, epochs=2, precision=precision,
                     jit_compile=jit, seed=1, model={"filters": [8], "units": []},
                     train={"verbose": 0, "tensorboard": False}, evaluate={"report": False})
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored after the run
    assert len(run.history) == 2 and np.isfinite(run.history["loss"]).all()
    assert run.meta["precision"] == precision
    conv = run.model.get_layer("block1_conv1")
    assert conv.compute_dtype == {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16", "float32": "float32"}[precision]
    assert conv.variable_dtype == "float32"
    probs = run.predict_proba(run.splits["path"].tolist()[:4])
    assert probs.dtype == np.float32 and run.model.output.dtype == "float32"
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
