"""`kiln export RUN_DIR format=keras|savedmodel|tflite|onnx [quantize=...] [out=DIR]`: write, then prove.

The export is written to a hidden staging folder beside `out`, loaded back in its own runtime and
compared with the Keras model on the run's test split (else val, else a train sample). Only an export
whose agreement (the task's rule) reaches `min_agreement` (or one forced through) is renamed into place, with:

    out/<model file>   model.keras | saved_model/ | model.tflite | model.onnx
    out/labels.txt     one class name a line, in output order
    out/export.json    format, quantize, input/output signature, classes, image spec, parity figures
"""

from __future__ import annotations

import datetime as _dt
import importlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field

from kiln.config.schema import Section
from kiln.errors import ConfigError, KilnError, received
from kiln.export import FORMATS

log = logging.getLogger("kiln.export")

LABELS = "labels.txt"
MANIFEST = "export.json"


class ExportOptions(Section):
    format: Optional[Literal["keras", "savedmodel", "tflite", "onnx"]] = Field(None, description="export format: keras, savedmodel, tflite or onnx")
    quantize: Literal["none", "float16", "dynamic", "int8"] = Field("none", description="tflite: none|float16|dynamic|int8; onnx: none|dynamic|int8")
    out: Optional[str] = Field(None, description="export folder (default RUN_DIR/exports/FORMAT[-QUANTIZE], auto-numbered)")
    force: bool = Field(False, description="keep an export whose agreement is below min_agreement (exit 0)")
    min_agreement: float = Field(0.99, ge=0.0, le=1.0, description="lowest agreement with the Keras model that passes (the task's rule: same top class, or values within a tolerance)")
    calibration_examples: int = Field(200, ge=1, le=100_000, description="int8: training examples used for calibration")
    parity_examples: int = Field(2000, ge=1, le=1_000_000, description="most test (or val) examples used for the parity check")


OLD_NAMES = {"calibration_images": "calibration_examples", "parity_images": "parity_examples"}  # still accepted


class AgreementError(KilnError):
    """The export disagrees with the Keras model more than allowed: exit code 1, figures attached."""

    exit_code = 1

    def __init__(self, message: str, figures: dict):
        super().__init__(message)
        self.figures = figures


def format_module(name: str):
    return importlib.import_module(f"kiln.export.{name}")


def options(values: dict) -> ExportOptions:
    """Validated export options from key=value pairs (the CLI) or keyword arguments (the API)."""
    import difflib

    values = {OLD_NAMES.get(k, k): v for k, v in values.items()}

    from kiln.config import build

    fmt = values.get("format")
    if fmt not in FORMATS:
        near = difflib.get_close_matches(str(fmt), FORMATS, n=1)
        why = "an export format is required" if fmt is None else "no such export format"
        hint = f"Did you mean format={near[0]}" if near else f"Use format={', format='.join(FORMATS)}"
        raise ConfigError(received("export", "format", "<unset>" if fmt is None else fmt, why, hint))
    opts = build(ExportOptions, values, "export")
    _check_options(opts)
    return opts


def _check_options(opts: ExportOptions) -> None:
    allowed = format_module(opts.format).QUANTIZE
    if opts.quantize not in allowed:
        raise ConfigError(received("export", "quantize", opts.quantize, f"{opts.format} exports support quantize={'|'.join(allowed)}",
                                   "Example: format=tflite quantize=int8"))


def default_out(run_path: Path, fmt: str, quantize: str) -> Path:
    base = run_path / "exports" / (fmt if quantize == "none" else f"{fmt}-{quantize}")
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def export_run(run_dir: str | Path, format: str | None = None, quantize: str = "none", out: str | None = None,
               force: bool = False, min_agreement: float = 0.99, calibration_examples: int = 200,
               parity_examples: int = 2000, timing: dict | None = None, **old_names) -> dict:
    """Export a run, verify it in its own runtime, and return the figures written to export.json.

    Raises `AgreementError` (exit 1) when agreement < `min_agreement` and not `force`; nothing is kept then.
    """
    from kiln.run import load_run

    unknown = set(old_names) - set(OLD_NAMES)
    if unknown:
        raise TypeError(f"export_run() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    opts = options({k: v for k, v in dict(format=format, quantize=quantize, out=out, force=force, min_agreement=min_agreement,
                                          calibration_examples=calibration_examples, parity_examples=parity_examples,
                                          **old_names).items() if v is not None})
    run = load_run(run_dir)
    out_path = Path(opts.out) if opts.out else default_out(run.path, opts.format, opts.quantize)
    if out_path.exists() and (not out_path.is_dir() or any(out_path.iterdir())):
        raise ConfigError(received("export", "out", out_path, "it already exists and is not empty; Kiln never overwrites an export",
                                   "Pick a new out=DIR or leave out= unset to auto-number"))
    from kiln.quiet import harmless_tf_warnings

    with harmless_tf_warnings():  # e.g. a lookup table's "'NoneType' object has no attribute 'name'" (kiln/quiet.py)
        return _export(run, opts, out_path, timing)


def _export(run, opts: ExportOptions, out_path: Path, timing: dict | None) -> dict:
    import keras
    import tensorflow as tf

    import kiln
    from kiln.export.keras import KerasPredictor
    from kiln.export.parity import compare
    from kiln.io import FORMAT_VERSION, honour_umask, sha256_file, write_json, write_text

    module = format_module(opts.format)
    task = run.task
    model_sha256 = sha256_file(run.path / "model.keras")  # read before the model: ties the export to that file (kiln predict runtime=auto)
    if opts.format not in task.info.export_formats:
        raise ConfigError(received("export", "format", opts.format, f"{task.info.name} runs export to "
                                   f"{', '.join(task.info.export_formats)} only", f"Use format={task.info.export_formats[0]}"))
    signature = task.signature(run)  # raw inputs: what the parity check feeds the Keras model and the export
    model = run.model
    file_model, file_signature = task.export_model(run, opts.format)  # what the format's file holds
    calib = task.calibration_data(run, opts.calibration_examples) if opts.quantize == "int8" else None
    if calib is not None and file_signature.host is not None:
        calib = file_signature.host(calib)
    split, inputs, y = task.parity_data(run, opts.parity_examples)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_path.name}-", dir=out_path.parent))
    honour_umask(stage, folder=True)  # mkdtemp's 0700 would stay on the export folder after the rename
    try:
        try:
            artifact = module.write(file_model, file_signature, stage, opts.quantize, calib)
        except Exception as err:  # a converter that cannot handle this model: say which, keep the details in the log
            log.info("export: %s %s failed", opts.format, opts.quantize, exc_info=True)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise KilnError(received("export", "format", f"{opts.format} quantize={opts.quantize}",
                                     f"the {opts.format} converter failed on this model ({type(err).__name__}: {first})",
                                     "Try another quantize= or format=; KILN_VERBOSE=1 shows more")) from None
        if signature.labels is not None:
            write_text(stage / LABELS, "".join(f"{c}\n" for c in signature.labels))
        for name, content in file_signature.files.items():
            write_text(stage / name, content)
        candidate = module.load(stage, file_signature)
        if file_signature.host is not None:  # raw inputs through the shipped host step, then the runtime
            candidate = HostThen(file_signature.host, candidate)
        figures = compare(KerasPredictor(model, signature), candidate, inputs, y, task.parity_for(run), timing)
        tensors = file_signature.to_dict()
        notes = module.NOTES[opts.quantize].format(n=0 if calib is None else len(calib))
        manifest = {
            "format_version": FORMAT_VERSION,
            "format": opts.format,
            "quantize": opts.quantize,
            "agreement": figures["agreement"],
            "agreement_rule": figures.get("agreement_rule", "same top class"),
            "metric": figures.get("metric", "accuracy"),  # the task's quality figure on the parity split, for each side
            "score": figures["score"],
            "keras_score": figures["keras_score"],
            "size_bytes": size_bytes(artifact),
            "keras_size_bytes": _keras_size(model, stage),
            "max_abs_diff": figures["max_abs_diff"],
            "mean_abs_diff": figures["mean_abs_diff"],
            **({"outputs_parity": figures["outputs"]} if "outputs" in figures else {}),  # several named outputs: each one's
            "latency_ms": figures["latency_ms"],
            "keras_latency_ms": figures["keras_latency_ms"],
            "throughput": figures["throughput"],
            "keras_throughput": figures["keras_throughput"],
            "batch_size": figures["batch_size"],
            "parity_split": split,
            "parity_n": figures["n"],
            "min_agreement": opts.min_agreement,
            "passed": figures["agreement"] >= opts.min_agreement,
            "forced": bool(opts.force and figures["agreement"] < opts.min_agreement),
            "runtime": candidate.runtime,
            "file": artifact.name,
            "task": task.info.name,
            **({"labels": LABELS, "classes": list(signature.labels)} if signature.labels is not None else {}),
            **file_signature.meta,
            "input": tensors["inputs"][0],
            "output": tensors["outputs"][0],
            **({"inputs": tensors["inputs"]} if len(tensors["inputs"]) > 1 else {}),
            "notes": notes,
            "calibration_examples": 0 if calib is None else int(len(calib)),
            "threshold": run.meta.get("threshold"),
            "run": str(run.path.resolve()),
            "model_sha256": model_sha256,
            **({"model_file": run.meta["model_file"]} if run.meta.get("model_file") else {}),  # model=FILE.py:build
            "run_name": run.name,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "kiln_version": kiln.__version__,
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
        }
        if opts.format == "tflite":
            manifest["tensor_types"] = candidate.tensor_types()
        if not manifest["passed"] and not opts.force:
            manifest["out"] = str(out_path)
            raise AgreementError(
                received("export", "min_agreement", opts.min_agreement,
                         f"the {opts.format} {opts.quantize} export agrees with the Keras model on only "
                         f"{figures['agreement']:.2%} of {figures['n']} {split} inputs, so it was not kept",
                         "Try a milder quantize= (dynamic or float16), more calibration_examples=, or pass force=true to keep it"),
                manifest)
        write_json(stage / MANIFEST, manifest)
        if out_path.exists():
            out_path.rmdir()  # empty, checked before
        os.replace(stage, out_path)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)  # Kiln's own staging folder
    manifest["out"] = str(out_path)
    if manifest["forced"]:
        log.warning("export: kept below min_agreement because force=true (agreement %.4f < %.4f)",
                    manifest["agreement"], opts.min_agreement)
    return manifest


class HostThen:
    """An export's predictor behind its `Signature.host` step: raw inputs -> host(inputs) -> runtime."""

    def __init__(self, host, predictor):
        self.host, self.predictor, self.runtime = host, predictor, predictor.runtime

    def __call__(self, x):
        return self.predictor(self.host(x))

    def outputs(self, x):
        return self.predictor.outputs(self.host(x))

    def __getattr__(self, name):  # tensor_types() and other runtime figures
        return getattr(self.predictor, name)


def _keras_size(model, stage: Path) -> int:
    """Bytes of the trained model as a .keras file without optimizer state: the float32 reference size."""
    from kiln.io import save_model

    tmp = stage / ".reference.keras"
    try:
        save_model(model, tmp)
        return tmp.stat().st_size
    finally:
        tmp.unlink(missing_ok=True)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def metric_name(m: dict) -> str:
    """The quality metric an export.json reports (files from before tasks named theirs hold accuracy)."""
    return m.get("metric", "accuracy")


def score(m: dict) -> float:
    return m["score"] if "score" in m else m["accuracy"]


def keras_score(m: dict) -> float:
    return m["keras_score"] if "keras_score" in m else m["keras_accuracy"]


def table(m: dict) -> str:
    """The figures of one export as a plain-text table (Keras float32 vs the export); "examples" fits every task's inputs."""
    name = m["format"] if m["quantize"] == "none" else f"{m['format']} {m['quantize']}"
    rows = [
        ("", "keras float32", name),
        (metric_name(m), f"{keras_score(m):.4g}", f"{score(m):.4g}"),
        (f"agreement ({m.get('agreement_rule', 'same top class')})", "", f"{m['agreement']:.2%}"),
        ("max |diff|", "", f"{m['max_abs_diff']:.2e}"),
        ("size", _size(m["keras_size_bytes"]), _size(m["size_bytes"])),
        ("latency, 1 example", f"{m['keras_latency_ms']:.3f} ms", f"{m['latency_ms']:.3f} ms"),
        (f"throughput, batch {m['batch_size']}", f"{m['keras_throughput']:.0f} ex/s", f"{m['throughput']:.0f} ex/s"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}" for r in rows]
    verdict = "passed" if m["passed"] else ("FORCED (below min_agreement)" if m["forced"] else "FAILED")
    lines.append(f"verified in {m['runtime']} on {m['parity_n']} {m['parity_split']} examples; "
                 f"min_agreement {m['min_agreement']:.2%}: {verdict}")
    if m.get("out"):
        lines.append(f"{'export' if m['passed'] or m['forced'] else 'not kept'}: {m['out']}")
    return "\n".join(lines)
