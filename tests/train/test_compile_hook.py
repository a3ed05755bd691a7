"""The trainer asks the task to compile (Task.compile), so a model with its own compile / train_step trains, resumes,
checkpoints and logs like any other; values learned after fitting come back from after_fit and land in run.json once."""

import json



def test_the_trainer_compiles_through_the_task_and_writes_learned_values(tmp_path, monkeypatch):
    import kiln
    from kiln.tasks.base import get_task
    from kiln.tasks.table.synth import make_table

    table = get_task("table")
    calls, written = [], []
    plain_compile, plain_after_fit = type(table).compile, type(table).after_fit

    def compile_own(self, model, optimizer, compiled, cfg):  # a task that compiles its model its own way
        calls.append(type(optimizer).__name__)
        plain_compile(self, model, optimizer, compiled, cfg)

    def after_fit(self, run, data, cfg):
        written.append(run.path.joinpath("run.json").exists())  # not yet written: the trainer writes it once, after
        return {**plain_after_fit(self, run, data, cfg), "learned_after_fit": 0.5}

    monkeypatch.setattr(type(table), "compile", compile_own)
    monkeypatch.setattr(type(table), "after_fit", after_fit)
    csv = tmp_path / "t.csv"
    make_table(200, seed=1).to_csv(csv, index=False)
    run = kiln.train(data=str(csv), target="label", run_dir=str(tmp_path / "run"), epochs=2, model="dnn",
                     train={"verbose": 0, "tensorboard": False}, evaluate={"report": False})
    assert calls == ["Adam"]  # one phase, compiled by the task
    assert written == [False]
    assert json.loads((run.path / "run.json").read_text())["learned_after_fit"] == 0.5
    assert len(run.history) == 2
