"""The Python API mirrors the CLI: `kiln.train(...) -> Run`, `kiln.load_run(path)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from kiln.run import Run, load_run


def _flatten_kwargs(kwargs: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`train={"lr": 0.01}` -> `{"train.lr": 0.01}`; `data="dir"` stays a shortcut for data.path."""
    from kiln.config.load import mapping_keys

    flat = {}
    for key, value in kwargs.items():
        if isinstance(value, dict) and f"{prefix}{key}" not in mapping_keys():
            for sub, v in _flatten_kwargs(value, f"{prefix}{key}.").items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    return flat


def train(config: str | Path | None = None, **overrides) -> Run:
    """Train from an optional YAML file plus keyword overrides (same keys as the CLI)."""
    from kiln.config import load_config
    from kiln.train.trainer import train as run_training

    cfg = load_config(config, overrides=_flatten_kwargs(overrides))
    return run_training(cfg)


def data_task(data: str | Path, keys: Mapping[str, Any] | None = None):
    """The task whose data `data` is, judged from the path and the config keys among `keys` as a user types them (bare
    or dotted: task=, target=, time=, text=); other keys (out=, strict=, a task's own audit limits) are passed over."""
    from kiln.config.load import _set_dotted, resolve_keys
    from kiln.config.schema import config_model
    from kiln.errors import KilnError
    from kiln.tasks.base import get_task, infer_task

    tree: dict = {}
    for key, value in (keys or {}).items():
        try:
            for dotted in resolve_keys(str(key).strip(), config_model(), "cli"):
                _set_dotted(tree, dotted, value)
        except KilnError:  # a mode option, not a config key
            continue
    if tree.get("task", "auto") not in (None, "auto"):
        return get_task(tree["task"])
    return infer_task(str(data), tree)


def augment_preview(config: str | Path | None = None, out: str | Path | None = None, samples: int = 8, variants: int = 5,
                    **overrides) -> Path:
    """Write a PNG grid of augmented training examples (the config's augmentation applied, through the data's task);
    returns its path."""
    from kiln.config import load_config
    from kiln.tasks.base import resolve_task

    cfg = load_config(config, overrides=_flatten_kwargs(overrides))
    return resolve_task(cfg).augment_preview(cfg, out=out, samples=samples, variants=variants)


def audit(data: str | Path, out: str | Path | None = None, fix: str | None = None, progress: bool = True, **options) -> dict:
    """Audit a dataset through its task (`Task.audit`): the report dict, also written as out/audit.json and audit.html.

    `options` are the task's own audit keys and the config keys that pick the task (task=, target=, time=, text=):
    for images the `AuditOptions` fields (min_side, max_aspect, near_distance, near_difference, alpha_background,
    max_pixels, workers, thumbnails). `fix="quarantine"` moves problem files beside DATA (tasks that support it);
    the report gains `"manifest"`.
    """
    from kiln.errors import ConfigError, received
    from kiln.tasks.base import Task

    if fix not in (None, "quarantine"):
        raise ConfigError(received("audit", "fix", fix, "the only fix is quarantine (move problem files aside)", "Use fix='quarantine'"))
    task = data_task(data, options)
    if fix == "quarantine" and type(task).quarantine is Task.quarantine:
        raise task.unsupported("audit fix=quarantine")  # before the audit runs, not after
    report = task.audit(str(data), out=None if out is None else str(out), progress=progress, **options)
    if fix == "quarantine":
        manifest = task.quarantine(report)
        if manifest is not None:
            report["manifest"] = str(manifest)
    return report


def convert(data: str | Path, out: str | Path, config: str | Path | None = None, shard_mb: int = 100, shard_images: int = 5000,
            workers: int = 0, progress: bool = True, **overrides) -> dict:
    """Pack a dataset into its task's shards (`Task.convert`; images: TFRecord shards); overrides are config keys
    (val_split, seed, task=, ...). Returns the manifest."""
    from kiln.config import load_config
    from kiln.tasks.base import resolve_task

    cfg = load_config(config, overrides=_flatten_kwargs(overrides))
    return resolve_task(cfg, data).convert(str(data), str(out), cfg, progress=progress, shard_mb=shard_mb,
                                           shard_images=shard_images, workers=workers)


def export_run(run_dir: str | Path, format: str, quantize: str = "none", out: str | Path | None = None, force: bool = False,
               min_agreement: float = 0.99, **options) -> dict:
    """Export a run and verify it in its own runtime (kiln/export/export.py): the figures of export.json.

    Raises `AgreementError` (exit code 1) when top-1 agreement with the Keras model is below `min_agreement`.
    """
    from kiln.export.export import export_run as run_export

    return run_export(run_dir, format, quantize, out=None if out is None else str(out), force=force,
                      min_agreement=min_agreement, **options)


def serve_model(path: str | Path, host: str = "127.0.0.1", port: int = 8000, name: str | None = None,
                api_key: str | None = None, **options) -> None:
    """Serve a run or export folder over HTTP until stopped (kiln/serve/app.py; `create_app` for the ASGI app)."""
    from kiln.serve.app import serve

    serve(path, host=host, port=port, name=name, api_key=api_key, **options)


def report(run: str | Path | Run, out: str | Path | None = None, split: str | None = None, **options) -> Path:
    """Write the run's self-contained report.html (kiln/evaluate/report.py); returns its path."""
    from kiln.evaluate.report import write_report

    return write_report(run if isinstance(run, Run) else load_run(run), out=out, split=split, **options)


def label_issues(run: str | Path | Run, method: str = "cv", folds: int = 5, epochs: int | None = None, **options):
    """Training examples whose label is probably wrong, as a DataFrame, worst first (the run's task's
    `label_issues`; images: cleanlab on out-of-sample probabilities)."""
    run = run if isinstance(run, Run) else load_run(run)
    return run.task.label_issues(run, method=method, folds=folds, epochs=epochs, **options)


def inspect_model(model, input_shape=None, classes: int | None = None, task: str | None = None) -> dict:
    """Per-layer output shapes, parameters, MACs and receptive fields of a registered model name (of any task; `task=`
    picks one when several register the name), run folder, .keras file or keras.Model (kiln/inspect.py)."""
    from kiln.inspect import inspect_model as inspect

    return inspect(model, input_shape=input_shape, classes=classes, task=task)


def list_runs(root: str | Path = "runs") -> list[dict]:
    """Key settings and metrics of every run folder under `root` (kiln/runs.py)."""
    from kiln.runs import find_runs, run_summary

    return [run_summary(f) for f in find_runs(root)]


def compare_runs(*runs: str | Path, out: str | Path | None = None) -> dict:
    """Runs side by side (summaries and the config keys that differ); writes their overlaid learning curves."""
    import json

    from kiln.runs import compare_runs as compare

    text, _ = compare([str(r) for r in runs], out=out, format="json")
    return json.loads(text)


def lr_find(config: str | Path | None = None, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100,
            out: str | Path | None = None, **overrides) -> dict:
    """LR range test for the model the config would train; returns {"suggested_lr", "min_loss_lr", "folder", ...}."""
    from kiln.config import load_config
    from kiln.train.lr_find import lr_find as run_lr_find

    cfg = load_config(config, overrides=_flatten_kwargs(overrides))
    return run_lr_find(cfg, start_lr=start_lr, end_lr=end_lr, steps=steps, out=out)


def tune(config: str | Path | None = None, **overrides) -> dict:
    """KerasTuner search over `tune.space`; returns {"best", "best_config" (a YAML for kiln train --config), "results", ...}."""
    from kiln.config import load_config
    from kiln.train.tune import tune as run_tune

    return run_tune(load_config(config, overrides=_flatten_kwargs(overrides)))


__all__ = ["Run", "audit", "convert", "augment_preview", "export_run", "load_run", "serve_model", "train"]
__all__ += ["lr_find", "tune"]
