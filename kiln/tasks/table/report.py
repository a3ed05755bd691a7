"""The table task's sections of report.html (the page and its learning curves are kiln/evaluate/report.py's):
metrics beside the baselines, cv, per-column decisions, importance, regression plots or the classification
sections, the audit summary."""

from __future__ import annotations

import base64
import html
import io

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


def sections(run) -> list[tuple[str, str]]:
    from kiln.tasks.base import task_of

    task = task_of(run.meta)
    spec = task.load_spec(run.meta)
    m = run.metrics
    out = []
    keys = ["accuracy", "macro_f1", "roc_auc", "pr_auc", "log_loss", "brier", "ece"] if spec.classes else ["r2", "rmse", "mae", "mape", "bias"]
    rows = [["kiln " + run.meta["model"]] + [_fmt(m.get("test", {}).get(k)) for k in keys]]
    rows += [[name] + [_fmt(b.get(k)) for k in keys] for name, b in (m.get("baselines") or {}).get("test", {}).items()]
    out.append(("Test metrics beside the baselines", _table(rows, ["model"] + keys)))
    if "cv" in m:
        out.append((f"{m['cv']['folds']}-fold cross-validation", _table([[k, _fmt(v["mean"]), _fmt(v["std"])] for k, v in m["cv"].items() if isinstance(v, dict)], ["metric", "mean", "std"])))
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
    audit = run.path / "audit.json"
    if audit.is_file():
        import json

        rep = json.loads(audit.read_text())
        out.append(("Audit summary", _table([[k, v] for k, v in rep.get("counts", {}).items()], ["problem", "count"])))
    return out
