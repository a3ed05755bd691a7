"""The task registry: lookup by name and alias, closest-name errors, inference by claims."""

import pytest

from kiln.tasks import base


class _Fake(base.Task):
    info = base.TaskInfo(name="fake", description="a task for registry tests", sources=("*.fake",),
                         label_kinds=("classification",), default_model="m", monitor="val_loss", mode="min",
                         export_formats=("keras",), aliases=("faux",))
    models = base.ModelRegistry("fake")

    def claims(self, path, keys):
        return 90 if str(path).endswith(".fake") else 0

    read_source = analyse = write_data = make_dataset = build_model = compile_spec = None
    run_meta = load_spec = evaluate = signature = parity_data = parity = adapter = example = None


_Fake.__abstractmethods__ = frozenset()


@pytest.fixture
def fake():
    base.register_task(_Fake)
    yield base.TASKS["fake"]
    base.TASKS.pop("fake")


def test_get_task_by_name_and_alias(fake):
    assert base.get_task("fake") is fake
    assert base.get_task("FAUX") is fake


def test_unknown_task_names_the_closest(fake):
    with pytest.raises(base.TaskError) as err:
        base.get_task("fkae")
    msg = str(err.value)
    assert msg.startswith("task received task=fkae; no task is registered under that name. Did you mean fake")
    assert "\n" not in msg


def test_infer_task_takes_the_highest_claim(fake, monkeypatch):
    assert base.infer_task("x.fake") is fake
    monkeypatch.setattr(base, "TASKS", {"fake": fake})
    monkeypatch.setattr(base, "BUILTIN", {})
    with pytest.raises(base.TaskError, match="no task recognises this data. Name the task with task=NAME"):
        base.infer_task("x.unknown-kind-of-data")


def test_model_registry_closest_names_and_create():
    reg = base.ModelRegistry("fake")

    @reg.register("small_net", family="simple")
    def small_net(width, depth=2):
        """A builder."""
        return (width, depth)

    assert reg.names("small*") == ["small_net"]
    assert reg.get("small_net").description == "A builder."
    assert reg.create("small_net", 3, depth=None, unknown=1) == (3, 2)  # None keeps the default; unknown kwargs dropped
    with pytest.raises(Exception, match="Did you mean small_net"):
        reg.get("smal_net")


def test_image_is_registered_and_inferred(tmp_path):
    from kiln.config import load_config

    image = base.get_task("image")
    assert image.info.name == "image" and "tflite" in image.info.export_formats
    folder = tmp_path / "pets" / "cat"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(b"")
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\npets/cat/a.png,cat\n")
    for data in (tmp_path / "pets", csv):
        assert base.resolve_task(load_config(overrides={"data": str(data)})) is image
    assert base.resolve_task(load_config(overrides={"task": "image"})) is image


def test_unknown_task_key_is_one_line_with_the_closest_name():
    from kiln.config import load_config

    with pytest.raises(base.TaskError) as err:
        base.resolve_task(load_config(overrides={"task": "imgae"}))
    assert str(err.value) == "task received task=imgae; no task is registered under that name. Did you mean image or table."


def test_old_run_json_without_task_is_an_image_run():
    assert base.task_of({"classes": ["a", "b"], "image": {"height": 8, "width": 8, "channels": 1}}) is base.get_task("image")


def test_cli_unknown_task_exits_2_with_one_line(tmp_path, capsys):
    from kiln.cli import main

    code = main(["train", f"data={tmp_path}", "task=imgae", f"run_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.splitlines() == ["task received task=imgae; no task is registered under that name. Did you mean image or table."]
    assert not (tmp_path / "run").exists()


def test_every_task_declares_its_tags():
    """The spine reads these instead of special cases: what a task needs, what it returns, what it leads with."""
    from kiln.tasks.types import OUTPUT_KINDS

    base._load()
    for task in base.TASKS.values():
        info = task.info
        assert info.target in ("required", "none"), info.name
        assert info.returns and set(info.returns) <= set(OUTPUT_KINDS), info.name
        for kind in info.returns:  # every kind a run can return has headline metrics, each with a direction
            assert info.headline.get(kind), (info.name, kind)
            assert all(m.direction in ("max", "min") for m in info.headline[kind])
        assert task.returns({"classes": ["a", "b"]}) in info.returns


def test_a_task_owns_its_config_section_and_old_files_still_load(tmp_path):
    """Image keys live in the image task's section; a config.yaml written before (data.image_size, model.filters,
    augment.flip) loads into it; the bare shortcuts keep working; a shared key left at auto is the task's default."""
    from kiln.config import load_config
    from kiln.config.schema import Config
    from kiln.tasks.image.config import model_kwargs

    assert "image_size" not in Config.model_fields["data"].annotation.model_fields
    assert "filters" not in Config.model_fields["model"].annotation.model_fields
    old = tmp_path / "config.yaml"
    old.write_text("data:\n  image_size: 48\n  channels: 1\n  batch_size: 16\nmodel:\n  name: cnn\n  filters: [8, 16]\n"
                   "  dropout: 0.25\naugment:\n  flip: horizontal\n")
    cfg = load_config(old)
    assert (cfg.image.image_size, cfg.image.channels, cfg.image.filters, cfg.image.augment.flip) == (48, 1, [8, 16], "horizontal")
    assert (cfg.data.batch_size, cfg.model.name, cfg.model.dropout) == (16, "cnn", 0.25)
    bare = load_config(overrides=["image_size=40", "flip=vertical", "filters=4,8", "epochs=3"])
    assert (bare.image.image_size, bare.image.augment.flip, bare.image.filters, bare.train.epochs) == (40, "vertical", [4, 8], 3)
    auto = load_config()
    assert auto.model.dropout == "auto" and model_kwargs(auto)["dropout"] == 0.25  # the image task's own default
