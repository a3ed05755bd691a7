"""The report's figures of a test backtest: forecasts with intervals, backtest windows, errors by step, residuals."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_plots(out: Path, frame, spec, kept: dict, metrics: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    w, starts, y, pred, point, base = (kept[k] for k in ("windows", "starts", "y", "pred", "point", "baselines"))
    times = frame["time"].to_numpy()
    L, H = spec.lookback, spec.horizon

    # forecast.png: the last window of the first series, with its history, the baselines and the interval
    i = int(np.flatnonzero(w.series[starts] == w.series[starts[0]])[-1])
    s = int(starts[i])
    fig, ax = plt.subplots(figsize=(9, 3.2))
    hist = slice(max(s, s + L - 4 * H), s + L)
    ax.plot(times[hist], w.values[hist, 0], color="k", lw=1, label="history")
    ft = times[s + L: s + L + H]
    ax.plot(ft, y[i], color="k", lw=1, ls=":", label="actual")
    ax.plot(ft, point[i], color="C0", lw=2, label="kiln")
    for name, c in (("seasonal_naive", "C1"), ("holt_winters", "C2")):
        if name in base and np.isfinite(base[name][i]).all():
            ax.plot(ft, base[name][i], color=c, lw=1, label=name)
    if spec.quantiles:
        ax.fill_between(ft, pred[i, :, 0], pred[i, :, -1], color="C0", alpha=0.2, label=f"{spec.quantiles[0]:g}-{spec.quantiles[-1]:g}")
    ax.legend(fontsize=7, ncol=3)
    ax.set_title(f"series {w.series[s]}: last test origin")
    fig.autofmt_xdate()
    fig.savefig(out / "forecast.png", dpi=80, bbox_inches="tight")
    plt.close(fig)

    # backtest.png: the test stretch of the first series and every k-th window's forecast
    first = np.flatnonzero(w.series[starts] == w.series[starts[0]])
    fig, ax = plt.subplots(figsize=(9, 3.2))
    a, b = int(starts[first[0]]) + L, int(starts[first[-1]]) + L + H
    ax.plot(times[a:b], w.values[a:b, 0], color="k", lw=1, label="actual")
    for j in first[:: max(1, H, len(first) // 12)]:
        o = int(starts[j]) + L
        ax.plot(times[o:o + H], point[j], color="C0", lw=1.2)
    ax.set_title("backtest: forecasts from evenly spaced origins (blue)")
    fig.autofmt_xdate()
    fig.savefig(out / "backtest.png", dpi=80, bbox_inches="tight")
    plt.close(fig)

    # errors_by_step.png
    fig, ax = plt.subplots(figsize=(6, 3))
    steps = np.arange(1, H + 1)
    ax.plot(steps, metrics["mae_by_step"], marker="o", ms=3, label="kiln")
    for name, bm in metrics.get("baselines", {}).items():
        if bm.get("mae_by_step"):
            ax.plot(steps, bm["mae_by_step"], lw=1, label=name)
    ax.set_xlabel("horizon step")
    ax.set_ylabel("MAE")
    ax.legend(fontsize=7)
    fig.savefig(out / "errors_by_step.png", dpi=80, bbox_inches="tight")
    plt.close(fig)

    # residuals.png: distribution (step 1 and all steps) and over time (step 1)
    r = y - point
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3))
    a1.hist(r.ravel(), bins=40, alpha=0.6, label="all steps")
    a1.hist(r[:, 0], bins=40, alpha=0.6, label="step 1")
    a1.legend(fontsize=7)
    a1.set_title("residual (actual - forecast)")
    a2.plot(times[starts + L], r[:, 0], lw=0.6)
    a2.axhline(0, color="k", lw=0.5)
    a2.set_title("step-1 residual by origin")
    fig.autofmt_xdate()
    fig.savefig(out / "residuals.png", dpi=80, bbox_inches="tight")
    plt.close(fig)


__all__ = ["write_plots"]
