"""The table task's sections of report.html (the page and its learning curves are kiln/evaluate/report.py's):
metrics beside the baselines, cv, per-column decisions, importance, regression plots or the classification
sections, the audit summary."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>"


def _table(rows: list[list], head: list[str]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{body}</table>"


def _fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else v)


def threshold_note(meta: dict) -> str:
    """One sentence on a two-class run's decision threshold: its value, the class it is on, the rule and split."""
    rule = meta.get("threshold_rule")
    if not rule:
        return ""
    t = meta.get("threshold")
    how = f"threshold={rule.get('rule')}" + (f" ({rule['auto']})" if rule.get("auto") else "")
    return (f"Decision threshold {0.5 if t is None else t:.4g} on P({rule.get('positive_class')}), {how}, chosen on "
            f"{rule.get('split')}. accuracy@0.5 is argmax's decision, the one the baselines make.")


def metric_columns(meta: dict, test: dict, classes) -> list[tuple[str, str]]:
    """(heading, metrics.json key) of the test table: a two-class run's accuracy columns are named with their threshold."""
    if not classes:
        return [(k, k) for k in ("r2", "rmse", "mae", "mape", "bias")]
    if len(classes) == 2:
        t = test.get("threshold", 0.5)
        at = [(f"accuracy@{t:.3g}", "accuracy")] if abs(t - 0.5) > 1e-9 else []
        return [("ROC-AUC", "roc_auc"), ("log loss", "log_loss"), *at, ("accuracy@0.5", "accuracy_at_0.5"), ("macro F1", "macro_f1"),
                ("PR-AUC", "pr_auc"), ("Brier", "brier"), ("ECE", "ece")]
    return [(k, k) for k in ("accuracy", "macro_f1", "roc_auc", "pr_auc", "log_loss", "brier", "ece")]


def _audits(run, extra=None) -> list[tuple[Path, dict]]:
    """audit.json in the run folder, `audit=FILE` (a file or its folder), and `kiln audit` outputs beside the run
    (e.g. runs/audit/audit.json) whose source is the run's table."""
    from kiln.errors import DataError, received
    from kiln.io import read_json

    found = [(run.path / "audit.json", json.loads((run.path / "audit.json").read_text()))] if (run.path / "audit.json").is_file() else []
    if extra:
        path = Path(extra)
        path = path / "audit.json" if path.is_dir() else path
        if not path.is_file():
            raise DataError(received("report", "audit", extra, "no audit.json there", "Pass the audit.json written by kiln audit"))
        found.append((path, read_json(path, "a Kiln audit.json", fix="Pass the audit.json written by kiln audit")))
    source = str(Path(str((run.meta.get("source") or {}).get("path", ""))).expanduser().resolve())
    for path in sorted(run.path.resolve().parent.glob("*/audit.json")):
        if all(path.resolve() != f.resolve() for f, _ in found):
            try:
                audit = json.loads(path.read_text())
                theirs = str(Path(str((audit.get("source") or {}).get("path", ""))).expanduser().resolve())
            except (OSError, ValueError, AttributeError):
                continue
            if theirs == source:
                found.append((path, audit))
    return found


def _audit_html(found: list[tuple[Path, dict]]) -> str:
    parts = []
    for path, rep in found:
        problems = rep.get("problems") or []
        parts.append(f"<p>{html.escape(str(path))}: {rep.get('rows', '?')} rows, {len(problems)} problem(s)</p>")
        if problems:
            parts.append(_table([[p.get("column") or "(table)", p.get("kind"), p.get("severity"), p.get("detail")] for p in problems],
                                ["column", "problem", "severity", "detail"]))
    return "".join(parts)


def sections(run, audit=None) -> list[tuple[str, str]]:
    from kiln.tasks.base import task_of

    task = task_of(run.meta)
    spec = task.load_spec(run.meta)
    m = run.metrics
    out = []
    columns = metric_columns(run.meta, m.get("test", {}), spec.classes)
    rows = [["kiln " + run.meta["model"]] + [_fmt(m.get("test", {}).get(k)) for _, k in columns]]
    for name, b in (m.get("baselines") or {}).get("test", {}).items():  # a baseline decides at 0.5: no accuracy at another cut
        rows.append([name] + [_fmt(b.get(k)) if k != "accuracy" or abs(b.get("threshold", 0.5) - m["test"].get("threshold", 0.5)) < 1e-9
                              else "" for _, k in columns])
    note = threshold_note(run.meta)
    out.append(("Test metrics beside the baselines", (f"<p>{html.escape(note)}</p>" if note else "") + _table(rows, ["model"] + [h for h, _ in columns])))
    if "cv" in m:
        cv_note = "<p>Each fold chooses its own threshold on its own val rows, with the run's rule; threshold is their mean.</p>" if note else ""
        out.append((f"{m['cv']['folds']}-fold cross-validation", cv_note + _table([[k, _fmt(v["mean"]), _fmt(v["std"])] for k, v in m["cv"].items() if isinstance(v, dict)], ["metric", "mean", "std"])))
    out.append(("Per-column decisions", _table([[f.column, f.kind, f.encoding, f.reason] for f in spec.features], ["column", "type", "encoding", "decision"])))
    if "importance" in m:
        imp = m["importance"]
        fig, ax = plt.subplots(figsize=(5, 0.3 * len(imp) + 1))
        names = list(imp)[::-1]
        ax.barh(names, [imp[n]["mean"] for n in names], xerr=[imp[n]["std"] for n in names], color="#4c72b0")
        ax.set_xlabel("score drop when shuffled (val)")
        out.append(("Permutation feature importance", _png(fig)))
    test = task.evaluate_split_rows(run, "test") if hasattr(task, "evaluate_split_rows") else None
    if test is not None:
        y, pred = test
        if spec.classes:
            from kiln.evaluate.calibration import calibration_summary, reliability_figure

            cm = np.asarray(m["test"]["confusion_matrix"])
            out.append(("Confusion matrix (test)", _table([[spec.classes[i]] + list(r) for i, r in enumerate(cm)], ["true \\ predicted"] + spec.classes)))
            out.append(("Reliability (test)", _png(reliability_figure(calibration_summary(y, pred)))))
        else:
            p = pred.ravel()
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
            axes[0].scatter(y, p, s=6, alpha=0.5)
            lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
            axes[0].plot([lo, hi], [lo, hi], "k--", lw=1)
            axes[0].set_xlabel("actual")
            axes[0].set_ylabel("predicted")
            axes[1].scatter(p, y - p, s=6, alpha=0.5)
            axes[1].axhline(0, color="k", lw=1)
            axes[1].set_xlabel("predicted")
            axes[1].set_ylabel("residual")
            out.append(("Predicted vs actual, residuals (test)", _png(fig)))
    found = _audits(run, audit)
    if found:
        out.append(("Data audit", _audit_html(found)))
    return out
