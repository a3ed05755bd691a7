"""Image regression after training: metrics.json (val, test and the baselines on the same split), the
predicted-vs-actual and residual plots, and the run's parts of report.html.

metrics.json: {"val": {r2, rmse, mae, bias, n}, "test": {...}, "baselines": {"val": {name: {...}}, "test": {...}}}.
The baselines read the pixels the model reads (decoded by the training pipeline), area-averaged to at most
16 px a side: the training mean, ridge and HistGradientBoosting (kiln/tasks/image/regress.py).
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

import numpy as np

from kiln.tasks.image.regress import BASELINE_MAX_TRAIN, fit_baselines, regress_metrics, small_pixels

log = logging.getLogger("kiln.evaluate")

BASELINE_NAMES = {"mean": "training mean", "ridge_pixels": "ridge on 16 px pixels",
                  "gradient_boosting_pixels": "gradient boosting on 16 px pixels"}


def _pixels(run, rows) -> np.ndarray:
    from kiln.tasks.image.export import decode

    use_pil = rows["use_pil"].astype(str).str.lower().eq("true").to_numpy() if "use_pil" in rows else None
    return decode(run, rows["path"].tolist(), use_pil)


def evaluate(task, run, data, cfg) -> dict:
    """Val and test metrics, the baselines beside them and the plots (plots/predicted_vs_actual_<split>.png,
    plots/residuals_<split>.png)."""
    metrics: dict = {}
    preds = {}
    for split in ("val", "test"):
        rows = data.split(split)
        if len(rows):
            preds[split] = np.asarray(task._split_probs(run, data, split)).reshape(-1)
            metrics[split] = regress_metrics(rows["y"].to_numpy(), preds[split])
    train = data.split("train")
    if len(train) > BASELINE_MAX_TRAIN:
        train = train.sample(BASELINE_MAX_TRAIN, random_state=cfg.seed)
        log.info("evaluate: baselines fit on %d of %d training images (a seeded sample)", BASELINE_MAX_TRAIN, len(data.split("train")))
    evals = {s: (small_pixels(_pixels(run, data.split(s))), data.split(s)["y"].to_numpy()) for s in preds}
    if evals:
        metrics["baselines"] = fit_baselines(small_pixels(_pixels(run, train)), train["y"].to_numpy(), evals, cfg.seed)
    for split, pred in preds.items():
        write_plots(data.split(split)["y"].to_numpy(), pred, run.path / "plots", split, (run.meta.get("target") or {}).get("name", "target"))
    return metrics


def figures(y, pred, target: str):
    """(predicted vs actual, residuals) matplotlib figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, pred = np.asarray(y, float), np.asarray(pred, float)
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    fig1, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(y, pred, s=10, alpha=0.6)
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="predicted = actual")
    ax.set_xlabel(f"actual {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("predicted vs actual")
    fig2, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.6))
    res = pred - y
    a1.scatter(pred, res, s=10, alpha=0.6)
    a1.axhline(0, color="grey", lw=1, ls="--")
    a1.set_xlabel(f"predicted {target}")
    a1.set_ylabel("residual (predicted - actual)")
    a2.hist(res, bins=30)
    a2.set_xlabel("residual")
    a2.set_ylabel("images")
    fig2.suptitle("residuals")
    return fig1, fig2


def write_plots(y, pred, out_dir: Path, split: str, target: str) -> None:
    import matplotlib.pyplot as plt

    from kiln.evaluate.plots import _save

    if not len(y):
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for fig, name in zip(figures(y, pred, target), ("predicted_vs_actual", "residuals")):
        _save(fig, out_dir / f"{name}_{split}.png")
        plt.close(fig)


def sections(run, split: str | None = None, **options) -> list:
    """Summary, metrics beside the baselines, predicted vs actual and the residuals for one split."""
    import matplotlib.pyplot as plt

    from kiln.evaluate.report import _fig_b64, _fmt, _img_tag, _table
    from kiln.tasks.base import ReportSection
    from kiln.tasks.image.report import _split_rows

    meta, metrics = run.meta, run.metrics
    target = meta.get("target") or {}
    split, rows = _split_rows(run, split)
    y = rows["label"].astype(float).to_numpy()
    use_pil = rows["use_pil"].astype(str).str.lower().eq("true").to_numpy() if "use_pil" in rows else None
    pred = np.asarray(run.predict_proba(rows["path"].tolist(), use_pil=use_pil)).reshape(-1)
    m = regress_metrics(y, pred)
    image, counts = meta.get("image", {}), meta.get("counts", {})
    head = (f'<h2 id="summary">Summary</h2><p>image regression of <b>{html.escape(str(target.get("name")))}</b> · model '
            f'{html.escape(str(meta.get("model")))} · input {image.get("height")}x{image.get("width")}x{image.get("channels")} · '
            f'images train / val / test {counts.get("train")} / {counts.get("val")} / {counts.get("test")} · '
            f'{meta.get("train_seconds")} s · target on train: mean {_fmt(target.get("mean"))}, std {_fmt(target.get("std"))}</p>')
    keys = ("r2", "rmse", "mae", "bias")
    table = [["Kiln " + str(meta.get("model"))] + [_fmt(m[k]) for k in keys]]
    for name, b in ((metrics.get("baselines") or {}).get(split) or {}).items():
        table.append([BASELINE_NAMES.get(name, name)] + [_fmt(b.get(k)) for k in keys])
    body = (f'<h2 id="regression">{split.title()}: Kiln beside the baselines (same images)</h2>'
            + _table(["model", "R2", "RMSE", "MAE", "bias"], table)
            + '<p class="muted">Baselines read the pixels the model reads, area-averaged to at most 16 px a side.</p>')
    fig1, fig2 = figures(y, pred, str(target.get("name", "target")))
    plots = (f'<h2 id="regression-plots">Predicted vs actual and residuals ({split})</h2>'
             + _img_tag(_fig_b64(fig1), "predicted vs actual") + _img_tag(_fig_b64(fig2), "residuals"))
    plt.close(fig1)
    plt.close(fig2)
    return [ReportSection("summary", "summary", head), ReportSection("regression", "metrics", body),
            ReportSection("regression-plots", "plots", plots)]


__all__ = ["evaluate", "figures", "sections", "write_plots"]
