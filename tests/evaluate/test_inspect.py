"""kiln inspect: textbook formulas on hand-computed stacks, Keras's own totals for every registered model,
published MAC and receptive-field figures for keras.applications models."""

import json
import math
import os

import pytest

from kiln.inspect import inspect_keras_model, inspect_model, out_size


def _by_name(info):
    return {r["name"]: r for r in info["layers"]}


def test_output_size_formula():
    assert out_size(224, 7, 2, "same") == 112
    assert out_size(224, 3, 2, "valid") == 111
    assert out_size(9, 3, 1, "valid", d=2) == 5
    assert out_size(9, 2, 2, "valid") == 4


def test_hand_computed_stack():
    import keras
    from keras import layers

    x = inputs = keras.Input((9, 9, 2))
    x = layers.Conv2D(4, 3, strides=2, name="c1")(x)                      # (4,4,4)  params (3*3*2+1)*4
    x = layers.MaxPooling2D(2, name="p1")(x)                               # (2,2,4)
    x = layers.Conv2D(3, 3, padding="same", use_bias=False, name="c2")(x)  # (2,2,3)  params 3*3*4*3
    x = layers.BatchNormalization(name="bn")(x)                            # 4*3 params, 0 MACs
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)  # (2,2,6)
    x = layers.SeparableConv2D(5, 1, name="sep")(x)                        # (2,2,5)
    x = layers.Flatten(name="flat")(x)                                     # 20
    outputs = layers.Dense(7, name="d")(x)
    model = keras.Model(inputs, outputs)
    info = inspect_keras_model(model)
    r = _by_name(info)
    assert r["c1"]["output_shape"] == [4, 4, 4] and r["c1"]["params"] == 76 and r["c1"]["macs"] == 4 * 4 * 4 * 18
    assert (r["c1"]["receptive_field"], r["c1"]["stride"]) == (3, 2)
    assert r["p1"]["macs"] == 0 and (r["p1"]["receptive_field"], r["p1"]["stride"]) == (5, 4)
    assert r["c2"]["params"] == 108 and r["c2"]["macs"] == 2 * 2 * 3 * 36 and r["c2"]["receptive_field"] == 13
    assert r["bn"]["params"] == 12 and r["bn"]["non_trainable_params"] == 6 and r["bn"]["macs"] == 0
    assert r["dw"]["params"] == 3 * 3 * 3 * 2 + 6 and r["dw"]["macs"] == 2 * 2 * 3 * 2 * 9 and r["dw"]["receptive_field"] == 21
    assert r["sep"]["params"] == 6 + 6 * 5 + 5 and r["sep"]["macs"] == 2 * 2 * 6 + 2 * 2 * 6 * 5
    assert r["flat"]["receptive_field"] is None and r["d"]["params"] == 21 * 7 and r["d"]["macs"] == 140
    assert info["total_params"] == 444 == model.count_params()
    assert info["trainable_params"] == 438 and info["non_trainable_params"] == 6
    assert info["macs"] == 1152 + 432 + 216 + 144 + 140
    assert info["mismatches"] == []


def test_padding_stride_dilation_and_nested_model():
    import keras
    from keras import layers

    inner_in = keras.Input((9, 9, 1))
    y = layers.Conv2D(2, 3, strides=2, padding="same", name="s2")(inner_in)     # ceil(9/2) = 5
    inner = keras.Model(inner_in, y, name="backbone")
    inputs = keras.Input((9, 9, 1))
    x = layers.Conv2D(1, 3, dilation_rate=2, name="dil")(inputs)              # k_eff 5 -> (5,5,1), RF 5
    x = layers.ZeroPadding2D(2, name="pad")(x)                                # (9,9,1)
    x = inner(x)                                                              # RF 5 + 2*1 = 7, stride 2
    x = layers.AveragePooling2D(3, strides=1, name="avg")(x)                  # (3,3,2), RF 7 + 2*2 = 11
    outputs = layers.Dense(3, name="per_pixel")(x)                            # dense on a map: 1x1 conv
    model = keras.Model(inputs, outputs)
    r = _by_name(inspect_keras_model(model))
    assert r["dil"]["output_shape"] == [5, 5, 1] and r["dil"]["macs"] == 25 * 9 and r["dil"]["receptive_field"] == 5
    assert r["backbone/s2"]["output_shape"] == [5, 5, 2] and r["backbone/s2"]["macs"] == 25 * 2 * 9
    assert (r["backbone/s2"]["receptive_field"], r["backbone/s2"]["stride"]) == (7, 2)
    assert (r["avg"]["receptive_field"], r["avg"]["stride"]) == (11, 2)
    assert r["per_pixel"]["macs"] == 9 * 2 * 3 and r["per_pixel"]["params"] == 9
    info = inspect_keras_model(model)
    assert info["total_params"] == model.count_params() == 10 + 20 + 9


def _order(names):
    """One model per family first (the smallest-looking), then the rest."""
    from kiln.tasks.image.models import get_entry

    hint = ("tiny", "small", "_b0", "50", "121", "16", "v2", "v3", "cnn", "dnn", "linear")
    ranked = sorted(names, key=lambda n: (not any(h in n for h in hint), len(n), n))
    firsts, seen = [], set()
    for n in ranked:
        fam = get_entry(n).family
        if fam not in seen:
            seen.add(fam)
            firsts.append(n)
    return firsts + [n for n in ranked if n not in firsts], seen


def test_totals_equal_keras_for_registered_models():
    """One model of every family (about 30 s); KILN_INSPECT_ALL=1 checks every registered model (minutes)."""
    import keras

    from kiln.tasks.image.models import create_model, get_entry, list_models

    order, families = _order(list_models())
    everything = os.environ.get("KILN_INSPECT_ALL") == "1"
    covered, checked = set(), []
    for name in order:
        if families <= covered and not everything:
            break  # the other variants of a family are the same builder with other widths and depths
        entry = get_entry(name)
        side = max(32, int(entry.meta.get("min_size", 32)))
        keras.backend.clear_session()
        model = create_model(name, (side, side, 3), 3, weights="none")
        info = inspect_keras_model(model)
        trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
        assert info["total_params"] == model.count_params(), name
        assert info["trainable_params"] == trainable, name
        assert sum(r["params"] for r in info["layers"]) == model.count_params(), name
        assert info["mismatches"] == [], (name, info["mismatches"][:3])
        assert info["macs"] > 0, name
        covered.add(entry.family)
        checked.append(name)
    keras.backend.clear_session()
    assert families <= covered and len(checked) >= len(families)


@pytest.mark.parametrize("app, low, high, rf", [
    ("ResNet50", 3.8e9, 4.1e9, 483),        # He et al. 2016: 3.8 G multiply-adds; RF 483 (Araujo et al. 2019)
    ("MobileNetV2", 0.285e9, 0.315e9, None),  # Sandler et al. 2018: 300 M
])
def test_published_figures(app, low, high, rf):
    import keras

    keras.backend.clear_session()
    model = getattr(keras.applications, app)(weights=None, input_shape=(224, 224, 3))
    info = inspect_keras_model(model)
    assert info["total_params"] == model.count_params()
    assert low <= info["macs"] <= high, info["macs"]
    last = [r for r in info["layers"] if r["receptive_field"] is not None][-1]
    assert last["stride"] == 32
    if rf:
        assert last["receptive_field"] == rf


def test_vgg16_published_figure():
    import keras

    keras.backend.clear_session()
    # without the 124 M-parameter classifier (slow to initialise) whose 123.6 M MACs the formula adds exactly
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    info = inspect_keras_model(model)
    fc = 7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000
    assert abs(info["macs"] + fc - 15.5e9) / 15.5e9 < 0.05  # Simonyan & Zisserman: 15.5 G
    assert _by_name(info)["block5_pool"]["receptive_field"] == 212 and _by_name(info)["block5_pool"]["stride"] == 32


def test_cli_json_and_run_folder(tiny_run, capsys):
    from kiln.cli import main

    assert main(["inspect", "cnn", "input_shape=32,32,3", "format=json", "classes=4"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"total_params", "trainable_params", "macs", "layers"} <= set(info)
    assert info["input_shape"] == [32, 32, 3] and info["layers"][-1]["output_shape"] == [4]
    info = inspect_model(str(tiny_run.path))
    assert info["total_params"] == tiny_run.model.count_params()
    assert main(["inspect", str(tiny_run.path)]) == 0
    out = capsys.readouterr().out
    assert "total params" in out and f"{tiny_run.model.count_params():,}" in out
    assert main(["inspect", "cnn", "input_shape=a,b"]) == 2
    assert "input_shape=a,b" in capsys.readouterr().err


def _one_model_per_task() -> dict[str, str]:
    """Each registered task's first model name that no other task registers."""
    from kiln.tasks.base import TASKS, _load, model_tasks

    _load()
    return {task: next(n for n in t.models.names() if len(model_tasks(n)) == 1) for task, t in sorted(TASKS.items())}


def test_every_task_model_by_name(capsys):
    """kiln inspect NAME finds the models of every task (`resnet_plr` failed when only the image registry was asked);
    a task builds its own for its example data, so the walk has real inputs and its totals are Keras's."""
    import keras

    from kiln.cli import main
    from kiln.tasks.base import get_task

    names = _one_model_per_task()
    names.pop("image")  # built for input_shape, not example data: test_cli_json_and_run_folder covers it
    assert "resnet_plr" in get_task("table").models
    names["table"] = "resnet_plr"
    if "anomaly" in names:
        names["anomaly"] = "dense"  # its example data is a table (conv1d reads series windows); dense is shared: task= names it
    for task, name in names.items():
        keras.backend.clear_session()
        assert main(["inspect", name, "format=json", *([f"task={task}"] if task == "anomaly" else [])]) == 0, \
            (task, name, capsys.readouterr().err)
        info = json.loads(capsys.readouterr().out)
        assert info["source"] == name and info["layers"] and info["mismatches"] == [], (task, name)
        assert info["total_params"] == sum(r["params"] for r in info["layers"]) > 0, (task, name)
    keras.backend.clear_session()


def test_names_several_tasks_register_and_bad_names(capsys):
    from kiln.cli import main
    from kiln.tasks.base import TASKS, model_tasks

    shared = next(n for t in TASKS.values() for n in t.models.names() if len(model_tasks(n)) > 1)
    owners = [t.info.name for t in model_tasks(shared)]
    assert main(["inspect", shared]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"received MODEL={shared};" in err and all(f"task={o}" in err for o in owners), err
    owner = next(o for o in owners if o != "image")  # built from that task's example data
    assert main(["inspect", shared, f"task={owner}", "format=json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == shared
    assert main(["inspect", "resnet_pl"]) == 2
    assert "Did you mean resnet_plr" in capsys.readouterr().err
    other = next(t for t in TASKS if t != owner and shared not in TASKS[t].models)
    assert main(["inspect", shared, f"task={other}"]) == 2
    assert f"the {other} task registers no model of that name" in capsys.readouterr().err
    assert main(["inspect", "resnet_plr", "input_shape=8"]) == 2  # a table model's inputs come from its data
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "input_shape=8" in err
