"""The table audit: column kinds and every problem kind on a table built to have them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from kiln.tasks.table.audit import KINDS, audit_table, write_audit
from kiln.tasks.table.columns import infer_columns
from kiln.tasks.table.prepare import resolve_target


def messy(n=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.choice(["a", "b"], n, p=[0.9, 0.1])
    x = rng.normal(size=n).round(3).astype(str).astype(object)
    x[:5] = "oops"  # stray strings in a number column
    x[5:40] = "?"
    big = rng.normal(size=n)
    big[0] = 100.0
    city = rng.choice(["New York", "new york", "Boston"], n)
    frame = pd.DataFrame({
        "row_id": np.arange(n).astype(str), "x": x, "big": big.round(4).astype(str), "city": city,
        "when": (pd.Timestamp("2020-01-01") + pd.to_timedelta(np.r_[np.arange(n - 1), 900], unit="D")).strftime("%Y-%m-%d"),
        "const": "k", "rare": np.r_[["z"], ["w"] * (n - 1)], "leak": np.where(y == "a", "L1", "L2"),
        "words": [f"a long free text comment number {i}" for i in range(n)], "label": y})
    frame = pd.concat([frame, frame.iloc[:3], frame.iloc[3:4].assign(label="b" if frame.label[3] == "a" else "a")], ignore_index=True)
    return frame


def test_kinds_and_problems(tmp_path):
    frame = messy()
    cols = infer_columns(frame)
    assert {c: cols[c].kind for c in cols} == {"row_id": "identifier", "x": "number", "big": "number", "city": "category", "when": "datetime",
                                               "const": "category", "rare": "category", "leak": "category", "words": "text", "label": "category"}
    t = resolve_target(frame, "label")
    report = audit_table(frame, "label", False, t.y, columns=cols)
    found = {(p["kind"], p["column"]) for p in report["problems"]}
    for expected in [("mixed_types", "x"), ("missing_values", "x"), ("outliers", "big"), ("inconsistent_spelling", "city"),
                     ("dates_as_text", "when"), ("date_gaps", "when"), ("constant", "const"), ("near_constant", "rare"),
                     ("identifier", "row_id"), ("free_text", "words"), ("target_leakage", "leak"), ("class_imbalance", "label"),
                     ("duplicate_rows", None), ("conflicting_duplicates", None)]:
        assert expected in found, expected
    assert ("target_leakage", "big") not in found
    assert all(p["kind"] in KINDS for p in report["problems"])
    assert report["columns"]["x"]["missing"] == 35 and report["columns"]["x"]["strays"] == 9  # 5 + the 4 repeated rows
    assert report["columns"]["when"]["range"]["min"] == "2020-01-01"
    write_audit(report, tmp_path)
    page = (tmp_path / "audit.html").read_text()
    assert page.count("data:image/png;base64,") == len(frame.columns) and "http" not in page.replace("http-equiv", "")
    assert json.loads((tmp_path / "audit.json").read_text())["counts"]["target_leakage"] == 1
