"""Serving raw rows: TF Serving REST (`instances` rows or columnar `inputs`), KServe v2 with one named
input per column, and `/predict` with a JSON row. A missing column or a value of the wrong type is a
400 that names it; the model call runs off the event loop.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kiln.tasks.base import Adapter

NUMERIC = ("numeric", "datetime")


class RowError(ValueError):
    """A request the rows cannot be read from: answered 400 with this message."""


class TableAdapter(Adapter):
    def __init__(self, served):
        """`served`: the spine's ServedModel (a run or an export folder: predictor, meta, threshold, name)."""
        super().__init__(served)
        from kiln.tasks.base import task_of

        self.task = getattr(served, "task", None) or task_of(served.meta)
        self.spec = self.task.load_spec(served.meta)
        self.name = served.name
        self.threshold = getattr(served, "threshold", None)

    # --- requests -> frame -------------------------------------------------------------------------
    def frame(self, rows: list) -> pd.DataFrame:
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise RowError("expected a non-empty list of rows, each an object {column: value}")
        need = [f.column for f in self.spec.used]
        missing = sorted({c for r in rows for c in need if c not in r})
        if missing:
            raise RowError(f"missing column(s) the model needs: {', '.join(missing)}")
        cols = {}
        for f in self.spec.used:
            values = []
            for i, r in enumerate(rows):
                v = r[f.column]
                if isinstance(v, (dict, list)):
                    raise RowError(f"column {f.column} row {i}: expected a single value, got {type(v).__name__}")
                if f.kind in ("number", "integer") and isinstance(v, str) and v.strip() and not _number(v) and not _missing(v):
                    raise RowError(f"column {f.column} row {i}: expected a number, got {v!r}")
                if isinstance(v, float) and math.isnan(v):
                    v = None
                values.append("" if v is None else (("true" if v else "false") if isinstance(v, bool) else str(v)))
            cols[f.column] = values
        return pd.DataFrame(cols, dtype=object)

    def columnar(self, inputs: dict) -> list[dict]:
        if not isinstance(inputs, dict) or not inputs:
            raise RowError("expected inputs as an object {column: [values]}")
        lengths = {len(v) if isinstance(v, list) else -1 for v in inputs.values()}
        if -1 in lengths or len(lengths) != 1:
            raise RowError("every input must be a list, all of the same length")
        n = lengths.pop()
        return [{c: v[i] for c, v in inputs.items()} for i in range(n)]

    def predict(self, rows: list) -> np.ndarray:
        from kiln.tasks.table.spec import encode_rows

        return np.asarray(self.served.predictor(encode_rows(self.frame(rows), self.spec)))

    def answer(self, out: np.ndarray) -> list[dict]:
        from kiln.evaluate.threshold import apply_threshold

        if not self.spec.classes:
            return [{"prediction": float(v)} for v in out[:, 0]]
        t = self.threshold if len(self.spec.classes) == 2 else None
        labels = np.asarray(self.spec.classes, dtype=object)[apply_threshold(out, t)]
        return [{"prediction": str(lab), "probabilities": dict(zip(self.spec.classes, map(float, p)))} for lab, p in zip(labels, out)]

    # --- protocols ------------------------------------------------------------------------------------
    def metadata(self) -> dict:
        inputs = [{"name": f.column, "datatype": "FP64" if f.encoding in NUMERIC else "BYTES", "shape": [-1],
                   "kind": f.kind, **({"format": "date text (or days since 1970-01-01)"} if f.encoding == "datetime" else {})}
                  for f in self.spec.used]
        out = ([{"name": "probabilities", "datatype": "FP32", "shape": [-1, len(self.spec.classes)]}, {"name": "label", "datatype": "BYTES", "shape": [-1]}]
               if self.spec.classes else [{"name": "prediction", "datatype": "FP32", "shape": [-1, 1]}])
        return {"name": self.name, "platform": "kiln-table", "inputs": inputs, "outputs": out, "classes": self.spec.classes}

    def kserve_rows(self, body: dict) -> list[dict]:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            raise RowError('expected {"inputs": [{"name": COLUMN, "datatype": ..., "shape": [N], "data": [...]}, ...]}')
        cols = {}
        for t in inputs:
            if not isinstance(t, dict) or "name" not in t or not isinstance(t.get("data"), list):
                raise RowError("each input needs a name and a data list")
            cols[t["name"]] = [_flat(v) for v in t["data"]]
        return self.columnar(cols)

    def kserve_answer(self, out: np.ndarray) -> dict:
        if self.spec.classes:
            answers = self.answer(out)
            outputs = [{"name": "probabilities", "datatype": "FP32", "shape": list(out.shape), "data": out.ravel().tolist()},
                       {"name": "label", "datatype": "BYTES", "shape": [len(out)], "data": [a["prediction"] for a in answers]}]
        else:
            outputs = [{"name": "prediction", "datatype": "FP32", "shape": list(out.shape), "data": out.ravel().tolist()}]
        return {"model_name": self.name, "outputs": outputs}

    def routes(self) -> list:
        from starlette.concurrency import run_in_threadpool
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def body_of(request: Request):
            try:
                return await request.json()
            except Exception:
                raise RowError("the body is not valid JSON") from None

        def guard(handler):
            async def wrapped(request: Request):
                try:
                    return await handler(request)
                except RowError as err:
                    return JSONResponse({"error": str(err)}, status_code=400)
                except Exception as err:  # a value the model could not take: still the request's fault, never a 5xx
                    return JSONResponse({"error": f"the rows could not be scored ({type(err).__name__}: {str(err)[:200]})"}, status_code=400)
            return wrapped

        async def tfs_predict(request: Request):
            body = await body_of(request)
            if isinstance(body, dict) and "instances" in body:
                out = await run_in_threadpool(self.predict, body["instances"])
                return JSONResponse({"predictions": out.tolist()})
            if isinstance(body, dict) and "inputs" in body:
                out = await run_in_threadpool(self.predict, self.columnar(body["inputs"]))
                return JSONResponse({"outputs": out.tolist()})
            raise RowError('expected {"instances": [{column: value, ...}]} or {"inputs": {column: [values]}}')

        async def kserve_infer(request: Request):
            rows = self.kserve_rows(await body_of(request))
            out = await run_in_threadpool(self.predict, rows)
            return JSONResponse(self.kserve_answer(out))

        async def predict_row(request: Request):
            body = await body_of(request)
            rows = body if isinstance(body, list) else [body]
            out = await run_in_threadpool(self.predict, rows)
            answers = self.answer(out)
            return JSONResponse(answers[0] if isinstance(body, dict) else answers)

        async def meta(request: Request):
            return JSONResponse(self.metadata())

        n = self.name
        return [Route(f"/v1/models/{n}:predict", guard(tfs_predict), methods=["POST"]),
                Route(f"/v2/models/{n}/infer", guard(kserve_infer), methods=["POST"]),
                Route("/predict", guard(predict_row), methods=["POST"]),
                Route(f"/v2/models/{n}", meta, methods=["GET"]), Route(f"/v1/models/{n}/metadata", meta, methods=["GET"])]

    def page(self, state=None) -> str:
        import html

        fields = "".join(f"<label>{html.escape(f.column)} <input name='{html.escape(f.column)}'></label><br>" for f in self.spec.used)
        return ("<!doctype html><html><head><meta charset='utf-8'><title>Kiln table model</title></head><body>"
                f"<h1>{html.escape(self.name)}</h1><form id='f'>{fields}<button>predict</button></form><pre id='out'></pre><script>"
                "document.getElementById('f').onsubmit=async e=>{e.preventDefault();const row=Object.fromEntries(new FormData(e.target));"
                "const r=await fetch('/predict',{method:'POST',headers:{'Content-Type':'application/json'},body:JSON.stringify(row)});"
                "document.getElementById('out').textContent=JSON.stringify(await r.json(),null,2)};</script></body></html>")


def _number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _flat(v):
    return v.decode() if isinstance(v, bytes) else v


def create_app(run, name: str | None = None):
    """A Starlette app for one table run: the adapter's routes, health, and the form page at /."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    from types import SimpleNamespace

    from kiln.evaluate.threshold import run_threshold
    from kiln.tasks.table.spec import predict_inputs

    model = run.model
    served = SimpleNamespace(name=name or run.name, meta=run.meta, task=run.task, threshold=run_threshold(run.meta),
                             predictor=lambda x: predict_inputs(model, x))
    adapter = TableAdapter(served)

    async def live(request):
        return JSONResponse({"live": True})

    async def page(request):
        return HTMLResponse(adapter.page())

    routes = [Route("/v2/health/live", live), Route("/v2/health/ready", live), Route("/", page)] + adapter.routes()
    app = Starlette(routes=routes)
    app.state.adapter = adapter
    return app


__all__ = ["RowError", "TableAdapter", "create_app"]


def _missing(v: str) -> bool:
    from kiln.tasks.table.source import MISSING

    return v.strip().lower() in MISSING
