"""`kiln audit FILE target=COL` for tables: problems found and reported, never silently fixed.

Every problem is `{"column", "kind", "severity", "detail"}` with a stable kind name (KINDS) that
scripts and CI may match on; per column the report also keeps its inferred type, missing counts
and a histogram. `strict=true` exits 1 on any problem not ignored, as for images.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.io import write_json
from kiln.tasks.table.columns import Column, infer_columns

log = logging.getLogger("kiln.table")

# kind -> (severity, what it means). Names are stable.
KINDS = {
    "unreadable_target": ("error", "the target has no usable values"),
    "missing_values": ("warning", "cells with no value (empty, ?, NA, n/a, -, ...)"),
    "mixed_types": ("warning", "numbers or dates stored with stray strings"),
    "dates_as_text": ("info", "a date column stored as text (parsed into date parts)"),
    "constant": ("warning", "a column with one value (left out of the model)"),
    "near_constant": ("info", "one value fills 99% or more of the column"),
    "identifier": ("info", "a column unique per row, like an id (left out of the model)"),
    "free_text": ("info", "free text (left out of a table model)"),
    "high_cardinality": ("info", "a category with many values (embedded instead of one-hot)"),
    "inconsistent_spelling": ("warning", "category values that differ only in case, spaces or punctuation"),
    "outliers": ("info", "values more than 3 IQR beyond the quartiles"),
    "duplicate_rows": ("warning", "rows repeated exactly"),
    "conflicting_duplicates": ("warning", "identical feature rows with different targets"),
    "target_leakage": ("warning", "one column alone predicts the target almost perfectly"),
    "class_imbalance": ("warning", "the rarest class is under a fifth of the commonest"),
    "date_gaps": ("info", "a gap between consecutive dates far longer than usual"),
    "stale_dates": ("info", "the newest date is more than a year before the audit"),
}
SEVERITIES = ("error", "warning", "info")
HIGH_CARDINALITY = 50
LEAK_SAMPLE = 5000
BINS = 20


def _problem(problems, column, kind, detail):
    problems.append({"column": column, "kind": kind, "severity": KINDS[kind][0], "detail": detail})


def histogram(col: Column, values: pd.Series) -> dict:
    """Counts for the page: numeric bins, or the 20 commonest categories."""
    if col.numbers is not None and col.kind != "boolean" or col.days is not None:
        x = col.numbers if col.numbers is not None else col.days
        x = x[np.isfinite(x)]
        if not len(x):
            return {"type": "bins", "edges": [], "counts": []}
        counts, edges = np.histogram(x, bins=min(BINS, max(1, len(np.unique(x)))))
        return {"type": "bins", "edges": edges.tolist(), "counts": counts.tolist()}
    vc = values[~col.missing].astype(str).str.strip().value_counts()
    return {"type": "top", "values": vc.index[:20].tolist(), "counts": vc.iloc[:20].astype(int).tolist(), "others": int(vc.iloc[20:].sum())}


def _spelling_groups(values: pd.Series) -> list[list[str]]:
    norm = values.map(lambda v: re.sub(r"[\W_]+", "", str(v).lower()))
    groups = pd.DataFrame({"v": values, "k": norm}).drop_duplicates().groupby("k")["v"].apply(list)
    return [sorted(g) for g in groups if len(g) > 1]


def _column_problems(problems, col: Column, values: pd.Series, target: bool, now_days: float):
    n = len(values)
    miss = int(col.missing.sum()) - col.strays
    if miss:
        _problem(problems, col.name, "missing_values", f"{miss} of {n} cells ({miss / n:.1%}) have no value")
    if col.strays:
        _problem(problems, col.name, "mixed_types", f"{col.strays} cells are not {col.kind} values, e.g. {col.stray_examples[:3]}; read as missing")
    if col.kind == "datetime":
        _problem(problems, col.name, "dates_as_text", f"parsed as dates ({col.date_format or 'mixed formats'})")
    if target:
        return
    if col.unique <= 1:
        _problem(problems, col.name, "constant", f"one value ({col.unique} distinct)")
    elif col.top_share >= 0.99:
        _problem(problems, col.name, "near_constant", f"the commonest value fills {col.top_share:.1%} of the cells")
    if col.kind == "identifier":
        _problem(problems, col.name, "identifier", f"{col.unique} distinct values in {col.present} cells")
    if col.kind == "text":
        _problem(problems, col.name, "free_text", f"{col.unique} distinct values of several words")
    if col.kind == "category":
        if col.unique > HIGH_CARDINALITY:
            _problem(problems, col.name, "high_cardinality", f"{col.unique} distinct values")
        groups = _spelling_groups(values[~col.missing].astype(str).str.strip())
        if groups:
            _problem(problems, col.name, "inconsistent_spelling", f"{len(groups)} group(s), e.g. {groups[0][:4]}")
    if col.kind in ("number", "integer"):
        x = col.numbers[np.isfinite(col.numbers)]
        if len(x) >= 10:
            q1, q3 = np.percentile(x, [25, 75])
            iqr = q3 - q1
            out = int(((x < q1 - 3 * iqr) | (x > q3 + 3 * iqr)).sum()) if iqr > 0 else 0
            if out:
                _problem(problems, col.name, "outliers", f"{out} values outside [{q1 - 3 * iqr:.4g}, {q3 + 3 * iqr:.4g}]")
    if col.kind == "datetime":
        d = np.unique(np.floor(col.days[np.isfinite(col.days)]))
        if len(d) >= 3:
            gaps = np.diff(d)
            med = float(np.median(gaps))
            if gaps.max() > max(10 * med, 1):
                _problem(problems, col.name, "date_gaps", f"largest gap {gaps.max():.0f} days, median {med:.0f}")
        if len(d) and now_days - d.max() > 365:
            _problem(problems, col.name, "stale_dates", f"newest date {_iso(d.max())}")


def _iso(days: float) -> str:
    return str(np.datetime64(int(days), "D"))


def _datetime_facts(col: Column) -> dict:
    d = col.days[np.isfinite(col.days)]
    if not len(d):
        return {}
    u = np.unique(np.floor(d))
    gaps = np.diff(u)
    return {"min": _iso(d.min()), "max": _iso(d.max()), "span_days": float(d.max() - d.min()),
            "median_gap_days": float(np.median(gaps)) if len(gaps) else None, "max_gap_days": float(gaps.max()) if len(gaps) else None}


def leakage(columns: dict[str, Column], frame: pd.DataFrame, target: str, y: np.ndarray, regression: bool, seed: int = 0) -> dict[str, float]:
    """Per feature: cross-validated score of a small tree on that column alone (accuracy or R²)."""
    from sklearn.model_selection import cross_val_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    ok = np.isfinite(y) if regression else y >= 0
    idx = np.flatnonzero(ok)
    rng = np.random.default_rng(seed)
    if len(idx) > LEAK_SAMPLE:
        idx = np.sort(rng.choice(idx, LEAK_SAMPLE, replace=False))
    if len(idx) < 20 or (not regression and len(np.unique(y[idx])) < 2):
        return {}
    scores = {}
    for name, col in columns.items():
        if name == target or col.kind in ("identifier", "text") or col.unique <= 1:
            continue
        if col.numbers is not None or col.days is not None:
            x = (col.numbers if col.numbers is not None else col.days)[idx]
            x = np.where(np.isfinite(x), x, np.nanmin(x) - 1 if np.isfinite(x).any() else 0)
        else:
            x = pd.factorize(frame[name].iloc[idx].astype(str))[0].astype(float)
        tree = (DecisionTreeRegressor if regression else DecisionTreeClassifier)(max_depth=6, min_samples_leaf=5, random_state=seed)
        scores[name] = float(np.mean(cross_val_score(tree, x.reshape(-1, 1), y[idx], cv=3, scoring="r2" if regression else "accuracy")))
    return scores


def audit_table(frame: pd.DataFrame, target: str | None = None, regression: bool | None = None, y: np.ndarray | None = None,
                columns: dict[str, Column] | None = None, source: dict | None = None, seed: int = 0) -> dict:
    """The audit report of a table (a dict, JSON-ready). `y`: encoded target (class index, -1 missing; or floats)."""
    columns = columns or infer_columns(frame)
    problems: list[dict] = []
    now_days = float(pd.Timestamp.now().value / 86_400e9)
    per_column = {}
    for name, col in columns.items():
        _column_problems(problems, col, frame[name], name == target, now_days)
        per_column[name] = {"type": col.kind, "missing": int(col.missing.sum() - col.strays), "strays": col.strays,
                            "missing_share": float(col.missing.mean()), "unique": col.unique, "top_share": col.top_share,
                            "histogram": histogram(col, frame[name]), **({"range": _datetime_facts(col)} if col.kind == "datetime" else {})}
        if col.numbers is not None and col.kind in ("number", "integer"):
            x = col.numbers[np.isfinite(col.numbers)]
            if len(x):
                per_column[name].update(min=float(x.min()), max=float(x.max()), mean=float(x.mean()), std=float(x.std()))
    features = [c for c in frame.columns if c != target]
    dup = frame.duplicated()
    if dup.any():
        _problem(problems, None, "duplicate_rows", f"{int(dup.sum())} rows repeat an earlier row")
    report = {"source": source or {}, "rows": int(len(frame)), "columns": per_column, "target": target}
    if target is not None and y is not None:
        if features:
            fdup = frame.duplicated(features, keep=False)
            conflict = frame[fdup].groupby(features, dropna=False)[target].nunique()
            n_conf = int((conflict > 1).sum())
            if n_conf:
                _problem(problems, None, "conflicting_duplicates", f"{n_conf} groups of identical feature rows carry different targets")
        scores = leakage(columns, frame, target, y, bool(regression), seed)
        report["single_column_scores"] = scores
        if not regression:
            counts = pd.Series(y[y >= 0]).value_counts()
            report["class_counts"] = {int(k): int(v) for k, v in counts.items()}
            majority = counts.max() / counts.sum() if len(counts) else 1.0
            if len(counts) >= 2 and counts.min() < 0.2 * counts.max():
                _problem(problems, target, "class_imbalance", f"rarest class {counts.min()} rows, commonest {counts.max()}")
            leak_at = max(0.99, majority + 0.5 * (1 - majority))
        else:
            leak_at = 0.99
        for name, s in scores.items():
            if s >= leak_at:
                _problem(problems, name, "target_leakage", f"this column alone scores {s:.3f} ({'R²' if regression else 'accuracy'}) on the target")
    report["problems"] = problems
    report["counts"] = {k: sum(p["kind"] == k for p in problems) for k in KINDS if any(p["kind"] == k for p in problems)}
    report["severities"] = {s: sum(p["severity"] == s for p in problems) for s in SEVERITIES}
    return report


def write_audit(report: dict, out: str | Path) -> Path:
    """audit.json and audit.html into `out` (atomic writes)."""
    from kiln.tasks.table.audit_page import write_page

    out = Path(out)
    write_json(out / "audit.json", report)
    write_page(report, out / "audit.html")
    return out


def summary_lines(report: dict) -> list[str]:
    sev = report["severities"]
    lines = [f"kiln: audited {report['rows']} rows x {len(report['columns'])} columns: "
             f"{sev['error']} error(s), {sev['warning']} warning(s), {sev['info']} note(s)"]
    for kind, count in report["counts"].items():
        cols = sorted({str(p["column"]) for p in report["problems"] if p["kind"] == kind and p["column"] is not None})
        lines.append(f"  {kind:<24} {count:>4}  {', '.join(cols[:6])}{' ...' if len(cols) > 6 else ''}")
    return lines


def strict_failures(report: dict, ignore: list[str] | None = None) -> list[dict]:
    return [p for p in report["problems"] if p["kind"] not in set(ignore or [])]


__all__ = ["KINDS", "audit_table", "leakage", "strict_failures", "summary_lines", "write_audit"]
