"""The series task's `kiln demo task=series` plan (kiln/demo.py walks it): weekly CO2 at Mauna Loa, 1958-2001
(2,284 weeks, some missing), as statsmodels ships it."""

from __future__ import annotations

from pathlib import Path

SETTINGS = {"series.time": "week", "series.target": "co2", "series.horizon": 13, "series.fill": "interpolate",
            "train.epochs": 20, "train.export_on_finish": "onnx"}
WHY = "a short tour: a quarter ahead from the weeks before, 20 epochs, and the ONNX export lets predict skip TensorFlow"


def write_co2(dest: Path) -> tuple[Path, Path]:
    """DEST/co2.csv (week, co2) and DEST/recent.csv (its last two years: the history predict forecasts from)."""
    from statsmodels.datasets import co2

    from kiln.io import write_text

    frame = co2.load_pandas().data.rename_axis("week").reset_index()
    frame["week"] = frame["week"].dt.strftime("%Y-%m-%d")
    dest.mkdir(parents=True, exist_ok=True)
    data, recent = dest / "co2.csv", dest / "recent.csv"
    write_text(data, frame.to_csv(index=False))
    last = frame.iloc[-260:].copy()
    last["co2"] = last["co2"].interpolate()  # predict needs the last lookback steps whole
    write_text(recent, last.to_csv(index=False))
    return data, recent


def demo_plan(dest: Path):
    from kiln.demo import DemoPlan, metric_baselines

    data, recent = write_co2(Path(dest))
    return DemoPlan(data=data, settings=dict(SETTINGS), why=WHY, metric="mase", higher=False, predict=[str(recent)],
                    audit={"time": "week", "target": "co2"}, baselines=metric_baselines("mase"),
                    source="statsmodels' weekly CO2 at Mauna Loa, 1958-2001 (2,284 weeks)")
