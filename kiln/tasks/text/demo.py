"""The text task's `kiln demo task=text` plan (kiln/demo.py walks it): real English that ships in Kiln's own
dependencies, the docstrings of NumPy, pandas, SciPy and Matplotlib (about 2,500 summaries): which library
wrote this one? No text corpus ships inside scikit-learn or statsmodels (their text sets download at run
time), and these are written by people, in four distinct house styles, and read offline.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

LIBRARIES = {
    "numpy": ("numpy", "numpy.linalg", "numpy.random", "numpy.fft", "numpy.ma"),
    "pandas": ("pandas", "pandas:DataFrame", "pandas:Series", "pandas:Index"),
    "scipy": ("scipy.stats", "scipy.signal", "scipy.optimize", "scipy.linalg", "scipy.interpolate", "scipy.special"),
    "matplotlib": ("matplotlib.pyplot", "matplotlib.axes:Axes"),
}
SECTION = re.compile(r"\n\s*\n|\n\s*(?:Parameters|Returns|See Also|Examples|Notes)\s*\n")
SETTINGS = {"text.text": "docstring", "text.label": "library", "train.epochs": 10, "train.export_on_finish": "onnx"}
WHY = "a short tour: 10 epochs of the default model, and the ONNX export (with its plain-Python tokenizer) lets predict skip TensorFlow"
SAMPLES = ["Compute the inverse of a matrix.", "Group rows by the values of a column and aggregate each group.",
           "Plot y versus x as lines and/or markers."]


def docstrings() -> list[tuple[str, str]]:
    """(library, the docstring's summary and first paragraph) of every public callable in LIBRARIES, once each."""
    import importlib

    rows, seen = [], set()
    for label, modules in LIBRARIES.items():
        for name in modules:
            module, _, attr = name.partition(":")
            owner = importlib.import_module(module)
            owner = getattr(owner, attr) if attr else owner
            for member in sorted(dir(owner)):
                if member.startswith("_"):
                    continue
                try:
                    obj = getattr(owner, member)
                except Exception:  # noqa: BLE001 - a lazy attribute that fails to load is simply not a docstring
                    continue
                doc = inspect.getdoc(obj) if callable(obj) else None
                if not doc:
                    continue
                text = " ".join(" ".join(SECTION.split(doc, maxsplit=2)[:2]).split())[:600]
                if len(text.split()) >= 6 and text not in seen:
                    seen.add(text)
                    rows.append((label, text))
    return rows


def write_docstrings(dest: Path) -> Path:
    import pandas as pd

    from kiln.io import write_text

    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "docstrings.csv"
    write_text(path, pd.DataFrame(docstrings(), columns=["library", "docstring"]).to_csv(index=False))
    return path


def demo_plan(dest: Path):
    from kiln.demo import DemoPlan, metric_baselines

    data = write_docstrings(Path(dest))
    return DemoPlan(data=data, settings=dict(SETTINGS), why=WHY, metric="accuracy", higher=True, predict=list(SAMPLES),
                    audit={"text": "docstring", "target": "library"}, baselines=metric_baselines("accuracy"),
                    source="the docstrings of NumPy, pandas, SciPy and Matplotlib (which library wrote this one?)")
