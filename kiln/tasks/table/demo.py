"""The table task's `kiln demo task=table` plan (kiln/demo.py walks it): scikit-learn's 569 real breast-cancer
biopsies (30 measurements of cell nuclei, malignant or benign), written as a CSV."""

from __future__ import annotations

from pathlib import Path

SETTINGS = {"table.target": "diagnosis", "train.epochs": 30, "train.export_on_finish": "onnx"}
WHY = "a short tour: 30 epochs of the default model, and the ONNX export lets predict skip TensorFlow"


def write_cancer(dest: Path) -> tuple[Path, Path]:
    """DEST/cancer.csv (the 30 measurements and `diagnosis`) and DEST/new_rows.csv (five rows, no diagnosis)."""
    from sklearn.datasets import load_breast_cancer

    from kiln.io import write_text

    frame = load_breast_cancer(as_frame=True).frame
    frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
    dest.mkdir(parents=True, exist_ok=True)
    data, rows = dest / "cancer.csv", dest / "new_rows.csv"
    write_text(data, frame.to_csv(index=False))
    write_text(rows, frame.drop(columns=["diagnosis"]).sample(5, random_state=0).to_csv(index=False))
    return data, rows


def demo_plan(dest: Path):
    from kiln.demo import DemoPlan, metric_baselines

    data, rows = write_cancer(Path(dest))
    return DemoPlan(data=data, settings=dict(SETTINGS), why=WHY, metric="accuracy", higher=True, predict=[str(rows)],
                    audit={"target": "diagnosis"}, baselines=metric_baselines("accuracy"),
                    source="scikit-learn's 569 breast-cancer biopsies (30 measurements, malignant or benign)")
