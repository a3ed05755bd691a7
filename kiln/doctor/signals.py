"""What `kiln doctor` reads from a run folder: history.csv, diagnostics.csv, config.yaml, metrics.json, run.json and
what the audit and label-issue modes left there. Works on a finished run, on one still training (a cut-short last
line is dropped) and on runs from before the recorder (history only). Anything else is one line, exit 2."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.errors import KilnError, bad_file, received
from kiln.io import REWRITE, read_csv, read_json, read_yaml

FILE = "diagnostics.csv"
COLUMNS = ("epoch", "step", "signal", "layer", "value")
RETRAIN = "Restore it from a copy, or train the run again"


@dataclass
class Signals:
    path: Path
    history: pd.DataFrame
    diagnostics: pd.DataFrame | None  # None: the run was trained before the recorder, or with doctor=false
    config: dict = field(default_factory=dict)  # config.yaml as written (sections of key: value)
    metrics: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # run.json ({} while the run trains)
    audits: list = field(default_factory=list)  # audit.json objects about this run's data
    label_issues: dict | None = None  # {"flagged": n, "rows": n} from label_issues.csv

    @property
    def finished(self) -> bool:
        return (self.path / "model.keras").is_file()

    def setting(self, section: str, key: str, default=None):
        value = (self.config.get(section) or {}).get(key, default)
        auto = (self.meta.get("auto") or {}).get(f"{section}.{key}")
        return auto["value"] if value == "auto" and isinstance(auto, dict) and "value" in auto else value

    def rows(self, signal: str, layer: str | None = "") -> pd.DataFrame:
        """Diagnostics rows of `signal` (layer "": the whole model; None: every layer), in step order."""
        d = self.diagnostics
        if d is None:
            return pd.DataFrame(columns=list(COLUMNS))
        out = d[d["signal"] == signal]
        if layer is not None:
            out = out[out["layer"] == layer]
        return out.sort_values("step", kind="stable")

    def values(self, signal: str, layer: str | None = "") -> np.ndarray:
        return self.rows(signal, layer)["value"].to_numpy(dtype=float)

    def column(self, name: str) -> np.ndarray | None:
        """A history.csv column as floats (None when absent)."""
        if name not in self.history.columns:
            return None
        return pd.to_numeric(self.history[name], errors="coerce").to_numpy(dtype=float)


def load(path: str | Path) -> Signals:
    path = Path(path)
    marks = ("config.yaml", "history.csv", "run.json")
    if not path.is_dir() or not any((path / m).is_file() for m in marks):
        raise KilnError(received("doctor", "RUN", path, "it is not a Kiln run folder (no config.yaml, history.csv or run.json)",
                                 "Pass a folder written by kiln train, e.g. kiln doctor runs/train"))
    hist_path = path / "history.csv"
    if not hist_path.is_file() or hist_path.stat().st_size == 0:
        raise KilnError(received("doctor", "RUN", path, "it has no history yet (no epoch has finished)",
                                 "Run kiln doctor again once the first epoch has ended"))
    history = read_csv(hist_path, ("epoch",), "a Kiln history.csv", fix=RETRAIN, complete=False)
    if not len(history):
        raise KilnError(received("doctor", "RUN", path, "it has no history yet (no epoch has finished)",
                                 "Run kiln doctor again once the first epoch has ended"))
    signals = Signals(path, history, _diagnostics(path / FILE))
    if (path / "config.yaml").is_file():
        signals.config = read_yaml(path / "config.yaml", fix=RETRAIN)
    if (path / "run.json").is_file():
        signals.meta = read_json(path / "run.json", "a Kiln run.json", fix=RETRAIN)
    if (path / "metrics.json").is_file():
        signals.metrics = read_json(path / "metrics.json", "a Kiln metrics.json", fix=REWRITE)
    signals.audits = _audits(path, signals.config)
    signals.label_issues = _label_issues(path)
    return signals


def _diagnostics(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    fix = "Move it away to diagnose from history.csv alone, or train the run again"
    frame = read_csv(path, COLUMNS, "a Kiln diagnostics.csv", fix=fix, complete=False, dtype={"signal": str, "layer": str},
                     keep_default_na=False)
    values = pd.to_numeric(frame["value"], errors="coerce")
    steps = pd.to_numeric(frame["step"], errors="coerce")
    epochs = pd.to_numeric(frame["epoch"], errors="coerce")
    text = frame["value"].astype(str).str.strip().str.lower()
    bad = (values.isna() & ~text.isin(["nan", "inf", "-inf"])) | steps.isna() | epochs.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise bad_file(path, f"it is not a Kiln diagnostics.csv (line {i + 2} holds {frame.iloc[i].to_dict()})", fix)
    frame["value"], frame["step"], frame["epoch"] = values.astype(float), steps.astype(int), epochs.astype(int)
    return frame


def _audits(path: Path, config: dict) -> list[dict]:
    """RUN/audit.json, and `kiln audit` outputs beside the run whose source is this run's data."""
    import json

    found = []
    if (path / "audit.json").is_file():
        found.append(read_json(path / "audit.json", "a Kiln audit.json"))
    source = (config.get("data") or {}).get("path")
    if source:
        source = str(Path(source).expanduser().resolve())
        for other in sorted(path.resolve().parent.glob("*/audit.json")):
            if other.parent == path.resolve():
                continue
            try:
                audit = json.loads(other.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(audit, dict) and audit.get("source") == source:
                found.append(audit)
    return found


def _label_issues(path: Path) -> dict | None:
    file = path / "label_issues.csv"
    if not file.is_file():
        return None
    table = read_csv(file, ("label",), "a Kiln label_issues.csv", fix="Run kiln label-issues again", keep_default_na=False,
                     dtype=str)
    flagged = int((table["is_issue"].astype(str).str.lower() == "true").sum()) if "is_issue" in table.columns else len(table)
    return {"flagged": flagged, "rows": int(len(table))}


__all__ = ["Signals", "load"]
