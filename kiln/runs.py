"""`kiln runs [DIR]` lists run folders; `kiln compare RUN RUN ...` puts them side by side.

    kiln runs                       # every run under ./runs, newest last
    kiln runs experiments format=json
    kiln compare runs/train runs/train-2 out=compare.png

`compare` prints the key settings, every config key that differs, and the metrics, one column per
run, and writes their learning curves overlaid (loss and accuracy; train dashed, val solid).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd

from kiln.cli_options import TEXT_TABLE
from kiln.errors import ConfigError, received
from kiln.io import read_csv, read_json, read_yaml

log = logging.getLogger("kiln.runs")


def find_runs(root: str | Path = "runs", max_depth: int = 3) -> list[Path]:
    """Folders under `root` (or `root` itself) that hold a run.json or config.yaml + history.csv, oldest first."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(received("runs", "DIR", root, "no such folder", "Pass the folder that holds your runs, e.g. kiln runs runs"))
    found = []

    def visit(folder: Path, depth: int):
        if (folder / "run.json").is_file() or ((folder / "config.yaml").is_file() and (folder / "history.csv").is_file()):
            found.append(folder)
            return  # a run's own subfolders (exports, checkpoints) are not runs
        if depth >= max_depth:
            return
        for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            visit(child, depth + 1)

    visit(root, 0)
    return sorted(found, key=_created)


def _created(folder: Path) -> float:
    for name in ("run.json", "config.yaml"):
        if (folder / name).is_file():
            return (folder / name).stat().st_mtime
    return folder.stat().st_mtime


FIX = "Restore it from a copy, or move that run folder out of the way"


def _read_json(path: Path) -> dict:
    """A run's JSON file, {} when absent; a damaged one is one line naming it (kiln/io.py), not a silent blank."""
    return read_json(path, f"a Kiln {path.name}", fix=FIX) if path.exists() else {}


def _config(folder: Path) -> dict:
    path = folder / "config.yaml"
    return read_yaml(path, fix=FIX) if path.exists() else {}


def _history(folder: Path, complete: bool) -> pd.DataFrame | None:
    """history.csv; an unfinished run may be appending to it (`complete=False` drops a partial last line)."""
    path = folder / "history.csv"
    return read_csv(path, ("epoch",), "a Kiln history.csv", fix=FIX, complete=complete) if path.exists() else None


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_summary(folder: str | Path) -> dict:
    """Key settings and metrics of one run folder (finished or not)."""
    folder = Path(folder)
    meta, metrics, cfg = _read_json(folder / "run.json"), _read_json(folder / "metrics.json"), _config(folder)
    train, data, model = cfg.get("train", {}), cfg.get("data", {}), cfg.get("model", {})
    history = _history(folder, complete=(folder / "model.keras").exists())
    epochs = None if history is None else len(history)
    from kiln.tasks.base import TaskError, task_of

    task = None
    try:
        task = task_of(meta)
        shown = {"task": task.info.name if meta else None, **task.describe_run(meta)}  # as the run's task describes it
    except TaskError:  # a run of a task this Kiln does not have
        shown = {"task": meta.get("task"), "classes": None, "input": None}
    val, test = metrics.get("val", {}), metrics.get("test", {})
    lead = {split: task.headline(m) if task is not None and m else [] for split, m in (("val", val), ("test", test))}
    names = [label for label, _ in (lead["test"] or lead["val"])]
    return {
        "run": folder.name, "path": str(folder), "status": "finished" if (folder / "model.keras").is_file() else "unfinished",
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(_created(folder))),
        "task": shown["task"],
        "model": meta.get("model") or model.get("name"), "classes": shown["classes"], "input": shown["input"],
        "train_images": meta.get("counts", {}).get("train"), "epochs": epochs,
        "optimizer": train.get("optimizer"), "lr": train.get("lr"), "batch_size": data.get("batch_size"),
        "val_accuracy": val.get("accuracy"), "test_accuracy": test.get("accuracy"), "test_macro_f1": test.get("macro_f1"),
        "test_roc_auc": test.get("roc_auc"), "threshold": meta.get("threshold"), "train_seconds": meta.get("train_seconds"),
        # the figures the run's task leads with (Task.headline), named as the summary line names them
        "metrics": "/".join(names) or None,
        "val": "/".join(_short(v) for _, v in lead["val"]) or None, "test": "/".join(_short(v) for _, v in lead["test"]) or None,
        "headline": {split: dict(pairs) for split, pairs in lead.items() if pairs},
    }


def _short(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) and abs(value) < 1000 else f"{value:.4g}" if isinstance(value, float) else str(value)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _text_table(header: list[str], rows: list[list], right_from: int = 1) -> str:
    cells = [[_cell(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]

    def line(items):
        return "  ".join(c.rjust(w) if i >= right_from else c.ljust(w) for i, (c, w) in enumerate(zip(items, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in cells])


LIST_COLUMNS = ["run", "status", "task", "model", "classes", "input", "epochs", "optimizer", "lr", "metrics", "val", "test",
                "train_seconds", "created"]


def list_runs(root: str | Path = "runs", format: str = TEXT_TABLE) -> str:
    """The runs under `root` as a text table or JSON."""
    rows = [run_summary(f) for f in find_runs(root)]
    if format == "json":
        return json.dumps(rows, indent=2)
    if not rows:
        return f"kiln: no runs under {root}"
    names = [r["path"] if list(r["run"] for r in rows).count(r["run"]) > 1 else r["run"] for r in rows]
    return _text_table(["run"] + LIST_COLUMNS[1:], [[n] + [r[c] for c in LIST_COLUMNS[1:]] for n, r in zip(names, rows)], right_from=4)


def _label(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    return [str(p) if names.count(p.name) > 1 else p.name for p in paths]


COMPARE_ROWS = ["status", "task", "model", "classes", "input", "train_images", "epochs", "optimizer", "lr", "batch_size",
                "metrics", "val", "test", "threshold", "train_seconds"]


def compare_runs(paths, out: str | Path | None = None, format: str = TEXT_TABLE) -> tuple[str, Path | None]:
    """(side-by-side text or JSON, path of the overlaid learning curves PNG)."""
    folders = [Path(p) for p in paths]
    if len(folders) < 2:
        raise ConfigError(received("compare", "RUN", " ".join(map(str, paths)) or "<none>", "pass at least two run folders",
                                   "Example: kiln compare runs/train runs/train-2"))
    for f in folders:
        if not (f / "config.yaml").is_file():
            raise ConfigError(received("compare", "RUN", f, "it is not a Kiln run folder (no config.yaml)",
                                       "Pass folders written by kiln train; kiln runs lists them"))
    summaries = [run_summary(f) for f in folders]
    configs = [_flatten(_config(f)) for f in folders]
    keys = sorted(set().union(*configs))
    differ = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1
              and k not in ("run_dir", "name")]
    labels = _label(folders)
    dest = Path(out) if out else folders[0].resolve().parent / "compare.png"
    written = plot_learning_curves(folders, labels, dest)
    if format == "json":
        return json.dumps({"runs": summaries, "differences": {k: [c.get(k) for c in configs] for k in differ},
                           "curves": str(written) if written else None}, indent=2, default=str), written
    rows = [[key] + [s[key] for s in summaries] for key in COMPARE_ROWS]
    extra = [k for k in dict.fromkeys(k for s in summaries for k in s if k.startswith(("val_", "test_")))]  # every headline metric
    rows += [[key] + [s.get(key) for s in summaries] for key in extra]
    rows += [[f"config {k}"] + [c.get(k) for c in configs] for k in differ]
    text = _text_table(["run"] + labels, rows)
    if not differ:
        text += "\n(the configs are identical apart from run_dir / name)"
    if written:
        text += f"\nkiln: learning curves in {written}"
    return text, written


def plot_learning_curves(folders: list[Path], labels: list[str], dest: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kiln.evaluate.plots import _save

    histories = []
    for f, label in zip(folders, labels):
        history = _history(f, complete=(f / "model.keras").exists())
        if history is None:
            log.warning("compare: %s has no history.csv; left out of the curves", f)
        else:
            histories.append((label, history))
    if not histories:
        return None
    from kiln.evaluate.headline import history_metrics

    wanted = dict.fromkeys(m for f in folders for m in history_metrics(_read_json(f / "run.json")))
    metrics = [m for m in wanted if any(m in h.columns for _, h in histories)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.2))
    axes = [axes] if len(metrics) == 1 else list(axes)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes, metrics):
        for i, (label, h) in enumerate(histories):
            x = range(1, len(h) + 1)
            colour = colours[i % len(colours)]
            if metric in h.columns:
                ax.plot(x, h[metric], ls="--", color=colour, alpha=0.8, label=f"{label} train")
            if f"val_{metric}" in h.columns:
                ax.plot(x, h[f"val_{metric}"], ls="-", color=colour, label=f"{label} val")
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, dest)


__all__ = ["compare_runs", "find_runs", "list_runs", "plot_learning_curves", "run_summary"]
