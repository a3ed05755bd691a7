"""The table task's auto rules (kiln/tasks/table/auto.py): rows per step, epochs and patience from the
training rows; each decision recorded; a value the user set is kept."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kiln.config import load_config
from kiln.tasks.base import Prepared
from kiln.tasks.table.auto import auto_batch_rows, auto_epochs, auto_patience, batch_rows, resolve_auto


def _data(n_train: int) -> Prepared:
    split = np.array(["train"] * n_train + ["val"] * (n_train // 8) + ["test"] * (n_train // 8), dtype=object)
    return Prepared(rows=pd.DataFrame({"split": split}), spec=None, skipped=pd.DataFrame(), classes=None)


def test_rules_by_size():
    assert auto_batch_rows(300) == 32 and auto_batch_rows(10_000) == 200 and auto_batch_rows(80_000) == 1600
    assert auto_batch_rows(10_000_000) == 2048
    small, large = auto_epochs(300, 32), auto_epochs(80_000, 1600)
    assert small == 150 and large == 7  # 10 steps an epoch: capped at 150; 80,000 rows: ~500,000 rows seen
    assert auto_epochs(1200, 32) == 40 and auto_epochs(10 ** 7, 2048) == 5
    assert auto_patience(150) == 20 and auto_patience(7) == 5 and auto_patience(40) == 10


def test_resolve_auto_records_and_keeps_user_values():
    cfg = load_config(None, ["target=y"])
    new, decisions = resolve_auto(None, cfg, _data(80_000), "resnet_plr")
    got = {d.key: d.value for d in decisions}
    assert got == {"table.batch_rows": 1600, "data.batch_size": 1600, "train.epochs": 7, "train.patience": 5, "train.refit": False}
    assert new.table.batch_rows == 1600 and new.data.batch_size == 1600 and new.train.epochs == 7 and new.train.patience == 5
    assert all(d.line().startswith(f"auto: {d.key}=") and "(" in d.line() for d in decisions)
    assert batch_rows(new, 80_000) == 1600
    cfg = load_config(None, ["target=y", "batch_rows=100", "epochs=7", "patience=2", "refit=false"])
    new, decisions = resolve_auto(None, cfg, _data(80_000), "resnet_plr")
    assert {d.key: d.value for d in decisions} == {"data.batch_size": 100}
    assert new.train.epochs == 7 and new.train.patience == 2 and new.table.batch_rows == 100
    lr = {d.key: d.value for d in resolve_auto(None, load_config(None, ["target=y"]), _data(150), "linear")[1]}.get("train.lr")
    kept = resolve_auto(None, load_config(None, ["target=y", "lr=0.003"]), _data(150), "linear")[0].train.lr
    assert lr == 0.01 and kept == 0.003 and "train.lr" not in {d.key for d in decisions}
    small = resolve_auto(None, load_config(None, ["target=y"]), _data(1000), "resnet_plr")
    assert small[0].model.dropout == 0.3 and "model.dropout" in {d.key for d in small[1]}
    assert resolve_auto(None, load_config(None, ["target=y", "dropout=0.05"]), _data(1000), "dnn")[0].model.dropout == 0.05
    assert resolve_auto(None, load_config(None, ["target=y", "epochs=20"]), _data(1000), "dnn")[0].model.dropout == "auto"  # left to the table default


def test_batchnorm_momentum_from_the_spec_train_rows():
    from kiln.tasks.table.columns import infer_columns
    from kiln.tasks.table.models import MODELS, bn_momentum
    from kiln.tasks.table.spec import TableSpec, build_spec
    from kiln.tasks.table.synth import make_table

    frame = make_table(120, seed=4).drop(columns=["label"])
    train = np.arange(120) < 100
    spec = build_spec(frame, infer_columns(frame), "label", "classification", train, ["c0", "c1"], np.zeros(100, int))
    assert spec.train_rows == 100 and TableSpec.from_dict(spec.to_dict()).train_rows == 100
    assert bn_momentum(spec) == 0.99 and bn_momentum(TableSpec("y", "classification", [], train_rows=80_000)) == 0.9
    assert bn_momentum(TableSpec("y", "classification", [])) == 0.99  # a run folder from before train_rows
    spec.train_rows = 50_000
    model = MODELS.create("resnet_plr", spec, 2)
    assert {layer.momentum for layer in model.layers if "bn" in layer.name} == {0.9}


def _numeric_table(n: int, target: str, seed: int = 0):
    """(spec, encoded inputs, y) of two numbers and a two-class target: `linear` (a half-plane) or `xor` (quadrants)."""
    from kiln.tasks.table.columns import infer_columns
    from kiln.tasks.table.spec import build_spec, encode_rows

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    z = x[:, 0] + x[:, 1] + rng.normal(0, 0.3, n) if target == "linear" else x[:, 0] * x[:, 1]
    y = (z > 0).astype(int)
    frame = pd.DataFrame({"a": [f"{v:.4f}" for v in x[:, 0]], "b": [f"{v:.4f}" for v in x[:, 1]]})
    spec = build_spec(frame, infer_columns(frame), "label", "classification", np.ones(n, bool), ["no", "yes"], y)
    return spec, encode_rows(frame, spec), y


def test_model_auto_chooses_linear_only_where_trees_gain_nothing():
    """Cross-validation on the training rows, at every size from 30 rows: a half-plane gets `linear`, quadrants (xor)
    get `tabm`; below 30 rows `linear` and from 20,000 `resnet_plr` without any fit; the one-standard-error rule
    keeps ties linear."""
    from kiln.tasks.table.choose import choose_model, linear_is_enough

    spec, x, y = _numeric_table(400, "linear")
    name, why = choose_model(spec, x, y, seed=0)
    assert name == "linear" and "5-fold accuracy on the 400 training rows" in why
    spec, x, y = _numeric_table(400, "xor")
    name, why = choose_model(spec, x, y, seed=0)
    assert name == "tabm" and "trees fit better" in why
    spec, x, y = _numeric_table(150, "xor", seed=1)  # under the old 200-row floor: chosen on evidence too
    name, why = choose_model(spec, x, y, seed=0)
    assert name == "tabm" and "on the 150 training rows" in why
    name, why = choose_model(spec, {k: v[:25] for k, v in x.items()}, y[:25], seed=0)
    assert name == "linear" and "too few to cross-validate" in why
    assert choose_model(spec, {}, np.zeros(20_000, int), seed=0)[0] == "resnet_plr"  # no CV: the inputs are never read
    one_fold = {"linear": np.array([1.0, 1.0, 1.0, 1.0, 0.98]), "hist_gradient_boosting": np.ones(5)}
    assert linear_is_enough(one_fold)[0]  # one row of one fold: noise
    clear = {"linear": np.array([0.70, 0.72, 0.71, 0.69, 0.70]), "hist_gradient_boosting": np.array([0.75, 0.76, 0.74, 0.75, 0.77])}
    assert not linear_is_enough(clear)[0]


def test_model_auto_decision_and_linear_l2_are_recorded():
    """The choice made in analyse is one `model.name` decision; linear classification gets l2 = 1/(2n) unless set."""
    from types import SimpleNamespace

    from kiln.tasks.table.auto import linear_l2

    data = _data(400)
    data.extra["model_why"] = "5-fold accuracy ..."
    data.spec = SimpleNamespace(task="classification")
    got = {d.key: d.value for d in resolve_auto(None, load_config(None, ["target=y"]), data, "linear")[1]}
    assert got["model.name"] == "linear" and got["model.l2"] == linear_l2(400) == 0.00125
    assert got["train.patience"] == 0  # convex: no early stopping; a network keeps a quarter of its epochs
    assert {d.key: d.value for d in resolve_auto(None, load_config(None, ["target=y"]), data, "resnet_plr")[1]}["train.patience"] == 20
    kept = resolve_auto(None, load_config(None, ["target=y", "model=linear", "l2=0.1"]), data, "linear")
    assert kept[0].model.l2 == 0.1 and {"model.name", "model.l2"}.isdisjoint(d.key for d in kept[1])
    data.spec = SimpleNamespace(task="regression")
    assert "model.l2" not in {d.key for d in resolve_auto(None, load_config(None, ["target=y"]), data, "linear")[1]}
