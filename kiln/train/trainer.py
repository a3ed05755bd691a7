"""`kiln train`: config -> data -> model -> fit -> run folder with model, history, metrics and plots."""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from kiln.config import Config, dump_config
from kiln.io import FORMAT_VERSION, save_model, write_json, write_text

log = logging.getLogger("kiln.train")


def class_weights(y: np.ndarray, num_classes: int) -> dict[int, float]:
    """'balanced': n / (k * count_c), scikit-learn's definition."""
    from sklearn.utils.class_weight import compute_class_weight

    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=y)
    return {i: float(w) for i, w in enumerate(weights)}


def add_verdict(task, metrics: dict, meta: dict | None = None) -> None:
    """metrics["verdict"]: the model against the best baseline on val (kiln/evaluate/verdict.py) on the run's headline
    metrics (TaskInfo.headline for what the run returns), with the task's advice."""
    from kiln.evaluate.verdict import verdict

    headline = [(m.key, m.direction) for m in task.headline_metrics(meta or {})]
    v = verdict(metrics, headline, task.info.monitor, task.info.mode)
    if v:
        if v["loses"]:
            v["advice"] = task.verdict_advice(v)
        metrics["verdict"] = v


def train(cfg: Config):
    """Run one training job end to end and return its `Run` (None on a multi-worker process that is not the chief).

    Resumes an unfinished run folder (see kiln/train/resume.py); trains in phases (kiln/train/phases.py)
    under the `train.distribute` strategy and `train.precision` policy (kiln/train/distribute.py).
    """
    from kiln.tasks.base import resolve_task
    from kiln.train.distribute import is_chief, make_strategy, precision_policy
    from kiln.train.resume import RunFolder

    task = resolve_task(cfg)  # an unknown task= fails here, before TensorFlow starts
    chief = is_chief() if cfg.train.distribute in ("auto", "multi_worker") else True
    folder = RunFolder(cfg, chief=chief)  # refuses a finished run_dir before TensorFlow starts
    strategy = make_strategy(cfg.train.distribute)  # before other TF ops: multi-worker collectives need that
    try:
        with precision_policy(cfg.train.precision):
            return _train(cfg, task, strategy, folder)
    except KeyboardInterrupt:
        if folder.chief and folder.path is not None:
            print(interrupted(folder.path), file=sys.stderr, flush=True)
        raise
    finally:
        folder.close()


def interrupted(run_dir) -> str:
    """What Ctrl+C leaves and the exact command that continues it: the same `kiln train` words with run_dir= (or,
    outside the CLI, the run_dir= to pass)."""
    import shlex

    from kiln.train.resume import read_state

    try:
        state = read_state(run_dir)
    except Exception:  # noqa: BLE001 - a checkpoint cut short by the interrupt: nothing to continue from
        state = None
    if state is None:
        return f"kiln: interrupted before the first epoch ended; {run_dir} holds no checkpoint, so delete it and start again"
    argv = sys.argv[1:]
    if argv[:1] == ["train"]:
        words = [a for a in argv[1:] if not a.startswith(("run_dir=", "resume="))]
        how = "kiln " + shlex.join(["train", *words, f"run_dir={run_dir}"])
    else:
        how = f"kiln.train(..., run_dir={str(run_dir)!r}) with the same settings"
    return f"kiln: interrupted; {run_dir} is saved after epoch {state.epoch}. Continue it with: {how}"


def _train(cfg: Config, task, strategy, folder):
    import keras
    import tensorflow as tf

    from kiln import __version__
    from kiln.evaluate.plots import plot_history
    from kiln.run import Run
    from kiln.train.distribute import agree, shard_options
    from kiln.train import auto
    from kiln.train.phases import best_epoch_count, fit_phases
    from kiln.train.resume import check_splits

    from kiln import user_model

    started = time.time()
    user_model.register(task, cfg.model.name)  # model=FILE.py:build: your own body inside the task's preparation
    model_name = task.choose_model(cfg)  # fail on a bad model name before touching data
    data = task.analyse(task.read_source(cfg), cfg, model_name)
    model_name = data.model or model_name  # model=auto decided from the data (e.g. by its size)
    cfg, decisions = task.resolve_auto(cfg, data, model_name)  # config.yaml holds what `auto` resolved; run.json says why
    for decision in decisions:
        print(f"kiln: {decision.line()}", flush=True)
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():  # before the run folder exists: a failed ImageNet download must not leave one behind
        model = task.build_model(model_name, data, cfg)
    chosen = cfg.model.name if cfg.model.name != "auto" else model_name  # resolve_auto may have named it (text)
    saved_cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": chosen})})  # what config.yaml holds
    run_dir = folder.create(saved_cfg)
    if folder.resuming:
        check_splits(run_dir, task.splits_frame(data))
    log.info("train: run folder %s", run_dir)
    write_text(run_dir / "config.yaml", dump_config(saved_cfg))
    task.write_data(data, run_dir)

    replicas = int(strategy.num_replicas_in_sync)
    global_batch = task.batch_size(cfg, data) * replicas
    train_ds, val_ds, steps = task.datasets(data, cfg, run_dir, global_batch)
    train_ds, val_ds = shard_options(train_ds, strategy), shard_options(val_ds, strategy)
    refit_ds = refit_steps = None
    if cfg.train.refit is True and val_ds is not None:
        refit_ds, refit_steps = task.refit_dataset(data, cfg, run_dir, global_batch)
        refit_ds = shard_options(refit_ds, strategy)
    recorder = None
    if folder.chief and cfg.train.doctor:  # kiln/doctor/recorder.py: RUN/diagnostics.csv
        from kiln.doctor.recorder import Recorder

        recorder = Recorder(run_dir, sample=val_ds if val_ds is not None else train_ds, every=cfg.train.doctor_every,
                            tensorboard=cfg.train.tensorboard)
    selection_outputs = run_dir / "state" / "selection_val_outputs.npy"

    def keep_val_outputs(selection_model):
        """Val's outputs from the model val chose: the honest val metrics once the refit has seen val."""
        if folder.chief:
            from kiln.io import atomic_path

            outputs = np.asarray(selection_model.predict(val_ds.map(lambda x, y: x), verbose=0))
            selection_outputs.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(selection_outputs) as tmp:
                np.save(tmp, outputs)

    compiled = task.compile_spec(data, cfg)
    monitor = compiled.monitor if val_ds is not None else compiled.monitor.removeprefix("val_")
    verbose = cfg.train.verbose if (cfg.train.verbose != 1 or sys.stdout.isatty()) else 2
    print(task.describe(model_name, model, data), flush=True)
    agree(strategy, folder.state.epoch if folder.state else 0, "resume epoch")
    try:
        model = fit_phases(model, cfg, run_dir=run_dir, state=folder.state, strategy=strategy, train_ds=train_ds, val_ds=val_ds,
                           steps=steps, monitor=monitor, compiled=compiled, verbose=verbose, chief=folder.chief,
                           model_name=model_name, task=task, refit_ds=refit_ds, refit_steps=refit_steps,
                           before_refit=keep_val_outputs, recorder=recorder)
    except BaseException as err:  # Ctrl+C or a crash: the folder keeps its history and diagnostics so far
        if recorder is not None:
            recorder.close("interrupted" if isinstance(err, KeyboardInterrupt) else "crashed")
            print(f"kiln: training stopped ({type(err).__name__}); {run_dir} keeps its history and diagnostics: "
                  f"kiln doctor {run_dir}", file=sys.stderr, flush=True)
        raise
    if recorder is not None:
        recorder.close()
    if folder.chief and not all(np.isfinite(w).all() for w in model.get_weights()):
        # TerminateOnNaN stopped it: nothing worth saving or resuming; history and diagnostics say why
        import shutil

        from kiln.errors import KilnError, received

        shutil.rmtree(run_dir / "state", ignore_errors=True)
        raise KilnError(received("train", "lr", f"{cfg.train.lr:g}", f"the loss became NaN or Inf, so training stopped and "
                                 f"{run_dir} keeps only its history and diagnostics", f"Run kiln doctor {run_dir}; "
                                 f"lower lr (e.g. lr={cfg.train.lr / 10:g}) or warm up (warmup_epochs=1)"))
    if refit_ds is not None and selection_outputs.is_file():
        data.outputs["val"] = np.load(selection_outputs)  # the refit model trained on val; the model val chose did not
    if not folder.chief:
        print("kiln: worker finished; the chief writes the run folder", flush=True)
        return None
    train_seconds = time.time() - started

    meta = {
        "format_version": FORMAT_VERSION, "kiln_version": __version__, "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__, "task": task.info.name, "model": model_name, **user_model.meta(model_name),
        **task.run_meta(data),
        "counts": data.counts(), "train_seconds": round(train_seconds, 2), "replicas": replicas,
        "global_batch": global_batch,
        "precision": cfg.train.precision, "auto": auto.record(decisions),
        **({"refit": {"epochs": int(best_epoch_count(run_dir, monitor, 1, 0, compiled.mode)),
                      "examples": int(sum(data.counts()[s] for s in ("train", "val"))),
                      "val_metrics": "from the model val chose, before the refit" if "val" in data.outputs
                      else "from the refit model, which trained on val"}}
           if refit_ds is not None else {}),
    }
    fitted = Run(run_dir, meta=meta, model=model)
    meta.update(task.after_fit(fitted, data, cfg) or {})  # values learned after fitting
    model = fitted.model  # after_fit may ship another model (a series run's choice against classical forecasters)
    write_json(run_dir / "run.json", meta)
    save_model(model, run_dir / "model.keras")
    folder.finish()

    run = Run(run_dir)
    metrics = task.evaluate(run, data, cfg)
    add_verdict(task, metrics, meta)
    write_json(run_dir / "metrics.json", metrics)
    from kiln.evaluate.headline import history_metrics

    plot_history(run.history, run_dir / "plots", history_metrics(meta))
    if cfg.evaluate.report:
        try:
            from kiln.evaluate.report import write_report
            write_report(run)
        except Exception as err:  # the run is saved already; a report problem must not lose it
            log.warning("train: report.html was not written (%s: %s); retry with kiln report %s", type(err).__name__, err, run_dir)
    export_on_finish(run, cfg.train.export_on_finish, task.info.export_formats, train_seconds)
    return run


EXPORT_MIN_TRAIN_SECONDS = 30  # export_on_finish=auto: the ONNX export (3-10 s here, BENCHMARKS.md) is then a small share


def export_on_finish(run, choice: str, formats: tuple[str, ...], train_seconds: float) -> dict | None:
    """The run's verified float ONNX export in RUN/exports/onnx (kiln predict then skips TensorFlow), as
    `train.export_on_finish` says; a converter failure or a failed parity check is a warning, never a lost run."""
    from kiln.errors import KilnError
    from kiln.export.export import export_run

    if choice == "none" or "onnx" not in formats:
        return None
    if choice == "auto" and train_seconds < EXPORT_MIN_TRAIN_SECONDS:
        print(f"kiln: export_on_finish=auto: no export (trained in {train_seconds:.0f} s, under {EXPORT_MIN_TRAIN_SECONDS} s: "
              f"the export would be a large share; kiln export {run.path} format=onnx writes it)", flush=True)
        return None
    started = time.time()
    try:
        manifest = export_run(run.path, "onnx", "none", out=str(run.path / "exports" / "onnx"))
    except Exception as err:  # noqa: BLE001 - the run is saved already; an export problem must not lose it
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        log.warning("train: the ONNX export was not kept (%s); kiln predict uses Keras; retry with kiln export %s format=onnx",
                    first if isinstance(err, KilnError) else f"{type(err).__name__}: {first}", run.path)
        return None
    why = "asked for" if choice == "onnx" else f"trained in {train_seconds:.0f} s"
    print(f"kiln: exported onnx in {time.time() - started:.1f} s ({why}): agrees with Keras on {manifest['agreement']:.1%} of "
          f"{manifest['parity_n']} {manifest['parity_split']} examples; kiln predict runs it without TensorFlow", flush=True)
    return manifest
