"""`kiln MODE [--config FILE] key=value ...` -> the library API. User mistakes: one line, exit 2
(a misspelt mode or option too: kiln/cli_errors.py; a damaged run file: kiln/io.py)."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import List, Optional

import typer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere

from kiln import quiet  # noqa: E402
from kiln.cli_errors import KilnGroup, print_version, run_app  # noqa: E402
from kiln.cli_options import mode_options as _options  # noqa: E402
from kiln.errors import ConfigError, received  # noqa: E402

app = typer.Typer(cls=KilnGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Kiln: labelled images -> trained, evaluated, exported and served Keras model.")

KEY_VALUE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*=")
ARGS = typer.Argument(None, help="key=value overrides (and paths where the mode takes them)")
CONFIG = typer.Option(None, "--config", help="YAML config file; key=value arguments override it")


@app.callback()
def _kiln(version: bool = typer.Option(False, "--version", is_eager=True, callback=print_version,
                                       help="Print Kiln's, TensorFlow's and Keras's versions and exit")):
    pass


def _split(args: list[str] | None) -> tuple[list[str], list[str]]:
    """Positional words vs key=value overrides."""
    words, pairs = [], []
    for a in args or []:
        (pairs if KEY_VALUE.match(a) else words).append(a)
    return words, pairs


def _no_words(words: list[str], component: str) -> None:
    if words:
        raise ConfigError(received(component, "argument", words[0], "arguments are key=value pairs", "Example: data=path/to/images epochs=20"))


@app.command(context_settings={"allow_extra_args": True})
def train(args: Optional[List[str]] = ARGS, config: Optional[str] = CONFIG):
    """Train a model: kiln train data=DIR [key=value ...]."""
    from kiln.config import load_config
    from kiln.train.trainer import train as run_training

    words, pairs = _split(args)
    _no_words(words, "train")
    run = run_training(load_config(config, pairs))
    if run is not None:  # None: a multi-worker process that is not the chief
        _summary(run)


@app.command()
def demo(args: Optional[List[str]] = ARGS, config: Optional[str] = CONFIG):
    """Train, evaluate and predict on scikit-learn's handwritten digits."""
    from kiln.config import parse_overrides
    from kiln.tasks.image.demo import demo as run_demo

    words, pairs = _split(args)
    _no_words(words, "demo")
    overrides = parse_overrides(pairs, "demo")
    if config:
        from kiln.config.load import _flatten, load_config
        overrides = {**_flatten(load_config(config).model_dump(exclude_defaults=True)), **overrides}
    run_demo(overrides)


@app.command()
def evaluate(args: Optional[List[str]] = ARGS):
    """Metrics for a run: kiln evaluate RUN_DIR [data=DIR] [split=test] [out=FILE]."""
    from kiln.run import load_run

    words, pairs = _split(args)
    _one(words, "evaluate", "kiln evaluate runs/train", "RUN_DIR", "run folder")
    opts = _options(pairs, {"data": str, "split": str, "out": str, "top_k": int, "threshold": float}, "evaluate")
    if opts.get("split", "test") not in ("train", "val", "test"):
        raise ConfigError(received("evaluate", "split", opts["split"], "no such split", "Use split=test, split=val or split=train"))
    result = load_run(words[0]).evaluate(**opts)
    print(json.dumps(result, indent=2))


@app.command()
def predict(args: Optional[List[str]] = ARGS):
    """Predict: kiln predict RUN_DIR INPUT... [top_k=5] [out=FILE.csv] [runtime=auto|keras|onnx] (images, table files, or texts: strings, .txt, CSV)."""
    from kiln.run import load_run

    words, pairs = _split(args)
    if len(words) < 2:
        raise ConfigError(received("predict", "arguments", " ".join(words) or "<none>", "pass a run folder and at least one image or folder",
                                   "Example: kiln predict runs/train photo.jpg"))
    opts = _options(pairs, {"top_k": int, "out": str, "runtime": str}, "predict")
    for row in load_run(words[0]).predict(words[1:], **opts):
        print(json.dumps(row))


@app.command()
def models(pattern: str = typer.Argument("*", help="glob over model names, e.g. 'efficientnet*'")):
    """List every registered task's models."""
    from kiln.tasks.base import TASKS, _load

    _load()
    found = 0
    for task_name, task in sorted(TASKS.items()):
        for name in task.models.names(pattern):
            e = task.models.get(name)
            size = f"{e.default_size}px" if e.default_size else "any size"
            print(f"{name:<24} {task_name:<8} {e.family:<14} {size:<9} {e.description}")
            found += 1
    if not found:
        raise ConfigError(received("models", "pattern", pattern, "no model name matches", "Run kiln models to list all"))


@app.command(name="augment-preview")
def augment_preview(args: Optional[List[str]] = ARGS, config: Optional[str] = CONFIG):
    """PNG grid of augmented training images: kiln augment-preview data=DIR flip=horizontal mixup=0.2 [out=FILE.png] [samples=8] [variants=5]."""
    from kiln.api import augment_preview as preview
    from kiln.config import parse_overrides

    words, pairs = _split(args)
    _no_words(words, "augment-preview")
    own = {"out": str, "samples": int, "variants": int}
    opts = _options([p for p in pairs if p.split("=", 1)[0] in own], own, "augment-preview")
    overrides = parse_overrides([p for p in pairs if p.split("=", 1)[0] not in own], "augment-preview")
    print(f"kiln: augment preview {preview(config, **opts, **overrides)}")


@app.command(name="config")
def show_config(args: Optional[List[str]] = ARGS, config: Optional[str] = CONFIG):
    """Print the resolved config (defaults, then --config FILE, then key=value)."""
    from kiln.config import dump_config, load_config

    words, pairs = _split(args)
    _no_words(words, "config")
    print(dump_config(load_config(config, pairs)), end="")


def _data_task(path: str, pairs: list[str]):
    """The task whose data `path` is, judged from the path and the config keys among `pairs` (target= ...)."""
    from kiln.config.load import _set_dotted, resolve_keys
    from kiln.config.schema import config_model
    from kiln.errors import KilnError
    from kiln.tasks.base import infer_task

    keys: dict = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            for dotted in resolve_keys(key.strip(), config_model(), "cli"):  # target= sets each task section's
                _set_dotted(keys, dotted, value)
        except KilnError:  # a mode option (out=, strict=), not a config key
            continue
    if keys.get("task", "auto") != "auto":
        from kiln.tasks.base import get_task

        return get_task(keys["task"])
    return infer_task(path, keys)


def _file_task(path: Path):
    """The task a Kiln JSON file names ("task"; files from before tasks existed are image files)."""
    from kiln.io import read_json
    from kiln.tasks.base import task_of

    return task_of(read_json(path, "a Kiln manifest") if path.is_file() else {})


@app.command()
def audit(args: Optional[List[str]] = ARGS):
    """Check a dataset: kiln audit DATA [out=DIR] [strict=true] [ignore=KIND,..] [the task's own keys: target=, fix=quarantine, min_side=16 ...]; kiln audit restore MANIFEST."""
    words, pairs = _split(args)
    if words[:1] == ["restore"] and len(words) == 2:
        raise SystemExit(_file_task(Path(words[1])).command("audit restore")(words[1:], pairs, None))
    _one(words, "audit", "kiln audit data/images out=runs/audit, or kiln audit restore DATA.quarantine/manifest.json", "DATA", "dataset (folder or CSV)")
    raise SystemExit(_data_task(words[0], pairs).command("audit")(words, pairs, None))


@app.command(context_settings={"allow_extra_args": True})
def convert(args: Optional[List[str]] = ARGS, config: Optional[str] = CONFIG):
    """Pack a dataset into the task's shards: kiln convert DATA out=DIR [shard_mb=100] [shard_images=5000] [val_split=.. seed=..]; kiln convert verify DIR."""
    words, pairs = _split(args)
    if words[:1] == ["verify"] and len(words) == 2:
        raise SystemExit(_file_task(Path(words[1]) / "manifest.json").command("convert verify")(words[1:], pairs, config))
    _one(words, "convert", "kiln convert data/images out=data/shards, or kiln convert verify data/shards", "DATA", "dataset (folder or CSV)")
    raise SystemExit(_data_task(words[0], pairs).command("convert")(words, pairs, config))


@app.command(name="export")
def export_cmd(args: Optional[List[str]] = ARGS):
    """Export and verify: kiln export RUN_DIR format=keras|savedmodel|tflite|onnx [quantize=none|float16|dynamic|int8] [out=DIR]."""
    from kiln.config import parse_overrides
    from kiln.export.export import AgreementError, export_run, options, table

    words, pairs = _split(args)
    _one(words, "export", "kiln export runs/train format=tflite quantize=int8", "RUN_DIR", "run folder")
    opts = options(_raw_strings(pairs, parse_overrides(pairs, "export"), ("out",)))
    try:
        result = export_run(words[0], **opts.model_dump())
    except AgreementError as err:
        print(table(err.figures))
        raise
    print(table(result))


@app.command()
def serve(args: Optional[List[str]] = ARGS):
    """Serve a model over HTTP: kiln serve RUN_DIR|EXPORT_DIR [host=127.0.0.1] [port=8000] [name=...] [api_key=...]."""
    from kiln.config import build, parse_overrides
    from kiln.serve.app import ServeOptions
    from kiln.serve.app import serve as run_server

    words, pairs = _split(args)
    _one(words, "serve", "kiln serve runs/train port=8000", "PATH", "run or export folder")
    values = _raw_strings(pairs, parse_overrides(pairs, "serve"), ("host", "name", "api_key"))
    if "api_key" not in values and os.environ.get("KILN_API_KEY"):
        values["api_key"] = os.environ["KILN_API_KEY"]  # keeps the key out of the process list
    opts = build(ServeOptions, values, "serve")
    run_server(words[0], **opts.model_dump())


def _raw_strings(pairs: list[str], values: dict, keys: tuple[str, ...]) -> dict:
    """Keys whose value is text as typed (an API key `123,abc` is neither a number nor a list)."""
    for pair in pairs:
        key, _, raw = pair.partition("=")
        if key.strip() in keys:
            values[key.strip()] = raw.strip() or None
    return values


def _one(words: list[str], component: str, example: str, key: str = "RUN_DIR", what: str = "run folder") -> str:
    """The mode's one positional argument, or the one-line error that names it."""
    if len(words) != 1:
        raise ConfigError(received(component, key, " ".join(words) or "<none>", f"pass exactly one {what}", f"Example: {example}"))
    return words[0]


def _format(opts: dict, component: str) -> str:
    fmt = opts.pop("format", "table")
    if fmt not in ("table", "json"):
        raise ConfigError(received(component, "format", fmt, "no such format", "Use format=table or format=json"))
    return fmt


@app.command()
def report(args: Optional[List[str]] = ARGS):
    """Write RUN_DIR/report.html: kiln report RUN_DIR [split=test] [out=FILE] [gallery=24] [gradcam=8] [audit=FILE]."""
    from kiln.evaluate.report import write_report
    from kiln.run import load_run

    words, pairs = _split(args)
    run_dir = _one(words, "report", "kiln report runs/train")
    opts = _options(pairs, {"split": str, "out": str, "gallery": int, "gradcam": int, "audit": str}, "report")
    if opts.get("split", "test") not in ("train", "val", "test"):
        raise ConfigError(received("report", "split", opts["split"], "no such split", "Use split=test, split=val or split=train"))
    dest = write_report(load_run(run_dir), out=opts.get("out"), split=opts.get("split"), gallery=opts.get("gallery", 24),
                        gradcam_samples=opts.get("gradcam", 8), audit=opts.get("audit"))
    print(f"kiln: report {dest}")


@app.command(name="label-issues")
def label_issues(args: Optional[List[str]] = ARGS):
    """Likely label errors in the training split: kiln label-issues RUN_DIR [method=cv|fast] [folds=5] [epochs=N]."""
    from kiln.tasks.image.label_issues import find_label_issues
    from kiln.run import load_run

    words, pairs = _split(args)
    run_dir = _one(words, "label-issues", "kiln label-issues runs/train method=fast")
    opts = _options(pairs, {"method": str, "folds": int, "epochs": int, "batch_size": int, "top": int}, "label-issues")
    top = opts.pop("top", 20)
    table = find_label_issues(load_run(run_dir), **opts)
    issues = table[table["is_issue"]].head(top)
    if len(issues):
        print(issues[["rank", "path", "label", "suggested", "label_quality"]].to_string(index=False))


@app.command(name="inspect")
def inspect_cmd(args: Optional[List[str]] = ARGS):
    """Per-layer shapes, parameters, MACs, receptive field: kiln inspect MODEL|RUN_DIR|FILE.keras [input_shape=H,W,C] [format=table|json]."""
    from kiln.inspect import format_table, inspect_model

    words, pairs = _split(args)
    if len(words) != 1:
        raise ConfigError(received("inspect", "MODEL", " ".join(words) or "<none>", "pass one model name, run folder or .keras file",
                                   "Example: kiln inspect resnet50 input_shape=224,224,3"))
    opts = _options(pairs, {"input_shape": object, "format": str, "classes": int}, "inspect")
    fmt = _format(opts, "inspect")
    info = inspect_model(words[0], input_shape=opts.get("input_shape"), classes=opts.get("classes", 10))
    print(json.dumps(info, indent=2) if fmt == "json" else format_table(info))


@app.command()
def runs(args: Optional[List[str]] = ARGS):
    """List runs with their settings and metrics: kiln runs [DIR] [format=table|json]."""
    from kiln.runs import list_runs

    words, pairs = _split(args)
    if len(words) > 1:
        raise ConfigError(received("runs", "DIR", " ".join(words), "pass at most one folder", "Example: kiln runs runs"))
    fmt = _format(_options(pairs, {"format": str}, "runs"), "runs")
    print(list_runs(words[0] if words else "runs", format=fmt))


@app.command()
def compare(args: Optional[List[str]] = ARGS):
    """Runs side by side + overlaid learning curves: kiln compare RUN RUN ... [out=FILE.png] [format=table|json]."""
    from kiln.runs import compare_runs

    words, pairs = _split(args)
    opts = _options(pairs, {"out": str, "format": str}, "compare")
    fmt = _format(opts, "compare")
    text, _ = compare_runs(words, out=opts.get("out"), format=fmt)
    print(text)


def _own_options(pairs: list[str], own: dict[str, type], component: str) -> tuple[dict, list[str]]:
    """Split mode options (numbers accept 1e-7) from config key=value pairs."""
    mine = [p for p in pairs if p.split("=", 1)[0] in own]
    values = _options(mine, {k: (str if t is float else t) for k, t in own.items()}, component)
    for key, kind in own.items():
        if kind is float and key in values:
            try:
                values[key] = float(values[key])
            except (TypeError, ValueError):
                raise ConfigError(received(component, key, values[key], "it must be a number", f"Example: {key}=1e-3")) from None
    return values, [p for p in pairs if p.split("=", 1)[0] not in own]


@app.command(name="lr-find", context_settings={"allow_extra_args": True})
def lr_find_cmd(args: Optional[List[str]] = ARGS, config: Optional[str] = CONFIG):
    """LR range test: kiln lr-find data=DIR [start_lr=1e-7] [end_lr=10] [steps=100] [out=DIR] [key=value ...]."""
    from kiln.config import load_config
    from kiln.train.lr_find import lr_find

    words, pairs = _split(args)
    _no_words(words, "lr-find")
    opts, rest = _own_options(pairs, {"start_lr": float, "end_lr": float, "steps": int, "out": str}, "lr-find")
    result = lr_find(load_config(config, rest), **opts)
    print(f"kiln: suggested lr {result['suggested_lr']:.3g} (loss lowest at {result['min_loss_lr']:.3g}); "
          f"plot {result['folder']}/lr_find.png")
    print(f"kiln: train with it: kiln train ... lr={result['suggested_lr']:.3g}")


@app.command(context_settings={"allow_extra_args": True})
def tune(args: Optional[List[str]] = ARGS, config: Optional[str] = CONFIG):
    """Hyperparameter search (KerasTuner) over the config's tune.space: kiln tune --config FILE [algorithm=bayesian] [trials=20]."""
    from kiln.config import load_config
    from kiln.train.tune import tune as run_tune

    words, pairs = _split(args)
    _no_words(words, "tune")
    run_tune(load_config(config, pairs))


def _summary(run) -> None:
    from kiln.evaluate.headline import summary_lines

    for line in summary_lines(run.meta, run.metrics):  # the task's headline metrics (TaskInfo.headline)
        print(line)
    print(f"kiln: run folder {run.path}")


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kiln: %(message)s"))
    logger = logging.getLogger("kiln")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if os.environ.get("KILN_VERBOSE") else logging.WARNING)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    _setup_logging()
    quiet.install()  # TensorFlow's start-up lines stay off stderr (kiln/quiet.py)
    return run_app(app, argv)


if __name__ == "__main__":
    sys.exit(main())
