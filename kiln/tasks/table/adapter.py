"""Serving raw rows on the spine's server (kiln/serve/app.py: auth, limits, metrics, micro-batching, drain).

- TF Serving REST: POST /v1/models/NAME:predict with rows `{"instances": [{col: v}]}` or columns
  `{"inputs": {col: [v, ...]}}`; GET /v1/models/NAME[/metadata]
- KServe v2: POST /v2/models/NAME/infer, one named input per column (BYTES text, FP64/FP32 or
  INT64/INT32 numbers, BOOL); GET /v2/models/NAME[/ready]
- POST /predict with one JSON row (or a list of rows) -> label and probabilities (or the prediction)
- GET /: a form with one field per column

Each request's rows are checked on the event loop (a missing column or a value of the wrong type is a
400 naming it) and queued as they are; the inference thread turns a whole micro-batch of rows into the
signature's inputs in one `decode` call (encode_rows: pandas and the column parsers once per batch).
"""

from __future__ import annotations

import html
import json
import math

import numpy as np

from kiln.tasks.base import Adapter

NUMBERS = ("number", "integer")  # column kinds whose cells must read as numbers (booleans and dates take text too)
KSERVE_TYPES = {"BYTES", "FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT8", "UINT16", "UINT32", "UINT64", "BOOL"}


class RowError(ValueError):
    """A request the rows cannot be read from: answered 400 with this message."""


def _number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _missing(v: str) -> bool:
    from kiln.tasks.common.tabular import MISSING

    return v.strip().lower() in MISSING


def _flat(v):
    return v.decode() if isinstance(v, bytes) else v


class TableAdapter(Adapter):
    def __init__(self, served):
        """`served`: the spine's ServedModel (a run or an export folder): predictor, meta, task, threshold, name."""
        super().__init__(served)
        self.task = served.task
        self.spec = served.spec if served.spec is not None else self.task.load_spec(served.meta)
        self.name = served.name
        self.threshold = served.threshold if self.spec.classes and len(self.spec.classes) == 2 else None
        self._fast = None  # every column encodable cell by cell (decided on first use)

    # --- requests -> checked rows (event loop) -> model inputs (inference thread) ------------------------
    def rows(self, rows) -> list[dict]:
        """The model's columns of each row as text ('' for missing), or a RowError naming what is wrong."""
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise RowError("expected a non-empty list of rows, each an object {column: value}")
        need = [f.column for f in self.spec.used]
        missing = [c for c in need if any(c not in r for r in rows)]
        if missing:
            import difflib

            extra = sorted({c for r in rows for c in r if c not in need})
            near = {c: difflib.get_close_matches(c, extra, n=1, cutoff=0.6) for c in missing}
            hints = [f"did you mean {near[c][0]!r} for {c!r}?" for c in missing if near[c]]
            raise RowError(f"missing column(s) the model needs: {', '.join(missing)}" + (f" ({'; '.join(hints)})" if hints else ""))
        out = []
        for i, r in enumerate(rows):
            row = {}
            for f in self.spec.used:
                v = r[f.column]
                if isinstance(v, (dict, list)):
                    raise RowError(f"column {f.column} row {i}: expected a single value, got {type(v).__name__}")
                if f.kind in NUMBERS and isinstance(v, str) and v.strip() and not _number(v) and not _missing(v):
                    raise RowError(f"column {f.column} row {i}: expected a number, got {v!r}")
                if isinstance(v, float) and math.isnan(v):
                    v = None
                row[f.column] = "" if v is None else (("true" if v else "false") if isinstance(v, bool) else str(v))
            out.append(row)
        return out

    def columnar(self, inputs) -> list[dict]:
        if not isinstance(inputs, dict) or not inputs:
            raise RowError("expected inputs as an object {column: [values]}")
        lengths = {len(v) if isinstance(v, list) else -1 for v in inputs.values()}
        if -1 in lengths or len(lengths) != 1:
            bad = [c for c, v in inputs.items() if not isinstance(v, list)]
            raise RowError(f"input {bad[0]} is not a list" if bad else "every input must be a list, all of the same length")
        n = lengths.pop()
        return [{c: v[i] for c, v in inputs.items()} for i in range(n)]

    def encode(self, rows: list[dict]) -> dict:
        """Checked rows -> the signature's inputs: cell by cell (kiln/tasks/table/rows.py) when every column's kind
        allows, else `encode_rows` (the same values; ~10 ms a column per call, whatever the rows)."""
        import pandas as pd

        from kiln.tasks.table.rows import encode_cells, fast_encodable
        from kiln.tasks.table.spec import encode_rows

        if self._fast is None:
            self._fast = fast_encodable(self.spec)
        return encode_cells(rows, self.spec) if self._fast else encode_rows(pd.DataFrame(rows, dtype=object), self.spec)

    def decode(self, rows: list):
        """Checked rows of a whole micro-batch -> (signature inputs, {row index: error}). A row the column parsers
        reject costs only its own request a 400: the batch is encoded again row by row to find it."""
        try:
            return self.encode(rows), {}
        except Exception:  # noqa: BLE001 - find the rows at fault
            good, bad = [], {}
            for i, r in enumerate(rows):
                try:
                    good.append(self.encode([r]))
                except Exception as err:  # noqa: BLE001
                    bad[i] = RowError(f"row {i} could not be read ({type(err).__name__}: {str(err)[:160]})")
                    good.append(None)
            filler = next((g for g in good if g is not None), None) or self.encode([self.example_row()])
            parts = [g if g is not None else filler for g in good]
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, bad

    def example_row(self) -> dict:
        """A row with every column empty (imputed as in training): warms the model, fills a failed row's slot."""
        return {f.column: "" for f in self.spec.used}

    def warm(self, state) -> None:
        """The column parsers once, then the model at every batch size it will see, before the first request."""
        inputs, _ = self.decode([self.example_row()])
        state.batcher.warm_inputs(inputs)

    # --- model outputs -> answers ------------------------------------------------------------------------
    def labels(self, out: np.ndarray) -> list[str]:
        from kiln.serve.model import decide

        return [str(self.spec.classes[i]) for i in decide(out, self.threshold)]

    def answers(self, out: np.ndarray) -> list[dict]:
        if not self.spec.classes:
            return [{"prediction": float(v)} for v in out[:, 0]]
        stated = {} if len(self.spec.classes) != 2 else {"threshold": 0.5 if self.threshold is None else float(self.threshold)}
        return [{"prediction": lab, "probabilities": dict(zip(self.spec.classes, map(float, p))), **stated}
                for lab, p in zip(self.labels(out), out)]

    def kserve_rows(self, body) -> list[dict]:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            raise RowError('expected {"inputs": [{"name": COLUMN, "datatype": "BYTES|FP64|INT64", "shape": [N], "data": [...]}, ...]}')
        cols = {}
        for t in inputs:
            if not isinstance(t, dict) or "name" not in t or not isinstance(t.get("data"), list):
                raise RowError("each input needs a name and a data list")
            name, datatype = str(t["name"]), str(t.get("datatype", "BYTES")).upper()
            if datatype not in KSERVE_TYPES:
                raise RowError(f"input {name}: datatype {t.get('datatype')!r} is not a KServe v2 type; use BYTES for text, FP64 or INT64 for numbers")
            data = [_flat(v) for v in t["data"]]
            if datatype != "BYTES" and any(isinstance(v, str) for v in data):
                raise RowError(f"input {name}: datatype {datatype} holds text; send it as BYTES")
            shape = t.get("shape")
            if isinstance(shape, list) and shape and all(isinstance(d, int) for d in shape) and math.prod(shape) != len(data):
                raise RowError(f"input {name}: shape {shape} does not match its {len(data)} values")
            cols[name] = data
        return self.columnar(cols)

    def metadata(self) -> dict:
        inputs = [{"name": f.column, "datatype": "FP64" if f.kind in NUMBERS else "BYTES", "shape": [-1], "kind": f.kind,
                   **({"format": "date text (or FP64 days since 1970-01-01)"} if f.encoding == "datetime" else {})}
                  for f in self.spec.used]
        k = len(self.spec.classes) if self.spec.classes else 0
        outputs = ([{"name": "probabilities", "datatype": "FP32", "shape": [-1, k]}, {"name": "label", "datatype": "BYTES", "shape": [-1]}]
                   if k else [{"name": "prediction", "datatype": "FP32", "shape": [-1, 1]}])
        return {"name": self.name, "versions": ["1"], "platform": self.served.platform, "inputs": inputs, "outputs": outputs,
                "parameters": {"classes": self.spec.classes, "target": self.spec.target, "task": self.spec.task}}

    def describe(self) -> str:
        what = f"{len(self.spec.classes)} classes" if self.spec.classes else "regression"
        return f"{what}, {len(self.spec.used)} columns ({', '.join(f.column for f in self.spec.used[:6])}{', ...' if len(self.spec.used) > 6 else ''})"

    # --- HTTP ------------------------------------------------------------------------------------------
    def routes(self) -> list:
        from kiln.tasks.table.routes import build_routes

        return build_routes(self)

    def page(self, state) -> str:
        fields = "".join(f"<label>{html.escape(f.column)} <small>({html.escape(f.kind)})</small> "
                         f"<input name='{html.escape(f.column)}'></label><br>" for f in self.spec.used)
        key = "<label>API key <input id='key' type='password'></label><br>" if state.api_key else ""
        config = json.dumps({"model": self.name}).replace("<", "\\u003c")
        return ("<!doctype html><html><head><meta charset='utf-8'><title>Kiln: " + html.escape(self.name) + "</title></head><body>"
                f"<h1>{html.escape(self.name)}</h1><p>{html.escape(self.describe())}</p><form id='f'>{fields}{key}<button>predict</button>"
                f"</form><pre id='out'></pre><script>const KILN={config};"
                "document.getElementById('f').onsubmit=async e=>{e.preventDefault();const row=Object.fromEntries(new FormData(e.target));"
                "const h={'Content-Type':'application/json'};const k=document.getElementById('key');if(k&&k.value)h['X-API-Key']=k.value;"
                "const r=await fetch('/predict',{method:'POST',headers:h,body:JSON.stringify(row)});"
                "document.getElementById('out').textContent=JSON.stringify(await r.json(),null,2)};</script></body></html>")


__all__ = ["RowError", "TableAdapter"]
