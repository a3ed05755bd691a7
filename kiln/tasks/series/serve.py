"""What a series export is and how it is served.

Signature: `history: float32 (N, lookback, channels)` raw recent values (target first, then covariates; the
scalers are inside) -> `forecast: float32 (N, horizon)`; with quantiles the first output is
`quantiles: float32 (N, horizon, Q)` and `forecast` (the median) comes second.

Serving (through the spine's micro-batcher): TF Serving REST `POST /v1/models/NAME:predict` with
`{"instances": [[v1, v2, ...], ...]}` or `{"instances": [{"history": [...], "timestamps": [...]}]}`, KServe v2
`POST /v2/models/NAME/infer` with a `history` FP32 tensor [N, T] or [N, T, C] (and optionally `timestamps`
BYTES [N] (last times) or [N, T]), `POST /predict` with one history (`[v1, v2, ...]` or `{"history": [...],
"timestamps": ...}`, or a list of such objects) and `GET /`, a page that draws the forecast after the history. A history longer than lookback is cut to its last lookback steps; a
shorter one, a missing value or timestamps at another frequency is a 400 naming it. Given timestamps, the
answer carries the forecast's own timestamps, continuing at the run's frequency.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kiln.serve.errors import ApiError
from kiln.serve.routes import read_json, served_model


async def read_json_any(request: Request):
    """The body as JSON of any shape (/predict takes a bare list of numbers); malformed or empty is a 400."""
    import json

    raw = await request.body()
    if not raw:
        raise ApiError(400, "the request body is empty; send a history as JSON")
    try:
        return json.loads(raw)
    except ValueError as err:
        raise ApiError(400, f"malformed JSON ({err})") from None
from kiln.tasks.base import Adapter, Signature, TensorSpec


def signature(run) -> Signature:
    spec = run.spec
    H, Q = spec.horizon, len(spec.quantiles)
    mid = spec.quantiles.index(0.5) if Q else None

    def call(model, inputs: dict) -> dict:
        out = model(inputs["history"], training=False)
        return {"quantiles": out, "forecast": out[:, :, mid]} if Q else {"forecast": out}

    outputs = (TensorSpec("quantiles", "float32", (H, Q)), TensorSpec("forecast", "float32", (H,))) if Q else \
        (TensorSpec("forecast", "float32", (H,)),)
    return Signature(inputs=(TensorSpec("history", "float32", (spec.lookback, spec.channels)),), outputs=outputs, call=call,
                     meta={"series": spec.to_dict()})


class SeriesAdapter(Adapter):
    def __init__(self, served):
        super().__init__(served)
        self.spec = served.task.load_spec(served.meta)

    # --- requests -> windows ------------------------------------------------------------------------
    def window(self, history, where: str) -> np.ndarray:
        spec = self.spec
        try:
            arr = np.asarray(history, dtype=np.float64)
        except (TypeError, ValueError):
            raise ApiError(400, f"{where} must be a list of numbers (or of [target, covariates...] rows)") from None
        if arr.ndim == 1 and spec.channels == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != spec.channels:
            raise ApiError(400, f"{where} has shape {list(arr.shape)}; it must be [T] or [T, {spec.channels}] "
                                f"(target{', ' + ', '.join(spec.covariates) if spec.covariates else ''})")
        if len(arr) < spec.lookback:
            raise ApiError(400, f"{where} holds {len(arr)} steps; the model needs the last lookback={spec.lookback}")
        arr = arr[-spec.lookback:]
        if not np.isfinite(arr).all():
            raise ApiError(400, f"{where} has missing or non-finite values in its last {spec.lookback} steps")
        return arr.astype(np.float32)

    def times(self, stamps, where: str) -> list[str] | None:
        """The forecast's timestamps after the last of `stamps` (a list, or one last time); the step is checked."""
        from kiln.tasks.series.audit import infer_freq
        from kiln.tasks.series.evaluate import next_times

        if stamps is None:
            return None
        stamps = [stamps] if isinstance(stamps, (str, int)) else stamps
        if not isinstance(stamps, list) or not stamps:
            raise ApiError(400, f"{where} must be a timestamp or a list of them")
        try:
            t = pd.to_datetime(pd.Series([str(s) for s in stamps]), format=self.spec.time_format if self.spec.time_format != "ISO8601" else "ISO8601")
        except (ValueError, TypeError):
            raise ApiError(400, f"{where} holds a value that is not a timestamp ({self.spec.time_format})") from None
        if len(t.unique()) >= 3:
            try:
                freq = infer_freq(t)
            except Exception:  # noqa: BLE001  - too few distinct times
                freq = self.spec.freq
            if freq != self.spec.freq:
                raise ApiError(400, f"{where} steps by {freq}; the model forecasts at {self.spec.freq}")
        return next_times(t.max(), self.spec)

    def answer(self, out: np.ndarray, stamps: list) -> list[dict]:
        spec = self.spec
        res = []
        for i, o in enumerate(out):
            row = {"forecast": (o[:, spec.quantiles.index(0.5)] if spec.quantiles else o).tolist()}
            if spec.quantiles:
                row["quantiles"] = {f"{q:g}": o[:, j].tolist() for j, q in enumerate(spec.quantiles)}
            if stamps[i] is not None:
                row["timestamps"] = stamps[i]
            res.append(row)
        return res

    # --- protocols ------------------------------------------------------------------------------------
    def routes(self) -> list:
        router = APIRouter()
        adapter = self

        @router.post("/v1/models/{target:path}")
        async def v1_predict(request: Request, target: str):
            if not target.endswith(":predict"):
                raise ApiError(400, "use POST /v1/models/NAME:predict")
            state, _ = served_model(request, target[: -len(":predict")])
            body = await read_json(request)
            instances = body.get("instances", body.get("inputs"))
            if not isinstance(instances, list) or not instances:
                raise ApiError(400, 'send "instances": a non-empty list of histories')
            xs, stamps = [], []
            for i, inst in enumerate(instances):
                if isinstance(inst, dict):
                    unknown = set(inst) - {"history", "timestamps"}
                    if unknown or "history" not in inst:
                        raise ApiError(400, f"instances[{i}] must be {{\"history\": [...], \"timestamps\": [...]}} (unknown: {sorted(unknown)})")
                    xs.append(adapter.window(inst["history"], f"instances[{i}].history"))
                    stamps.append(adapter.times(inst.get("timestamps"), f"instances[{i}].timestamps"))
                else:
                    xs.append(adapter.window(inst, f"instances[{i}]"))
                    stamps.append(None)
            out = await state.batcher.predict(np.stack(xs))
            return JSONResponse({"predictions": adapter.answer(out, stamps)})

        @router.get("/v1/models/{target:path}")
        async def v1_status(request: Request, target: str):
            name = target.removesuffix("/metadata")
            state, served = served_model(request, name)
            if target.endswith("/metadata"):
                return {"model_spec": {"name": served.name, "version": "1"}, "metadata": adapter.metadata()}
            return {"model_version_status": [{"version": "1", "state": "AVAILABLE" if state.ready else "UNAVAILABLE",
                                              "status": {"error_code": "OK", "error_message": ""}}]}

        @router.post("/v2/models/{name}/infer")
        async def v2_infer(request: Request, name: str):
            state, served = served_model(request, name)
            body = await read_json(request)
            tensors = {t.get("name"): t for t in body.get("inputs") or [] if isinstance(t, dict)}
            if "history" not in tensors:
                raise ApiError(400, "inputs must hold a tensor named 'history' (FP32 [N, T] or [N, T, C])")
            h = tensors["history"]
            shape, data = h.get("shape"), h.get("data")
            try:
                arr = np.asarray(data, dtype=np.float64).reshape(shape)
            except (TypeError, ValueError):
                raise ApiError(400, f"input 'history' data does not fill shape {shape}") from None
            if arr.ndim not in (2, 3) or not len(arr):
                raise ApiError(400, f"input 'history' has shape {shape}; it must be [N, T] or [N, T, C]")
            xs = np.stack([adapter.window(a, f"input 'history' row {i}") for i, a in enumerate(arr)])
            stamps = [None] * len(xs)
            if "timestamps" in tensors:
                ts = tensors["timestamps"].get("data")
                if not isinstance(ts, list) or len(ts) not in (len(xs), len(xs) * arr.shape[1]):
                    raise ApiError(400, "input 'timestamps' must be BYTES [N] (last times) or [N, T]")
                per = 1 if len(ts) == len(xs) else arr.shape[1]
                stamps = [adapter.times(ts[i * per:(i + 1) * per], f"input 'timestamps' row {i}") for i in range(len(xs))]
            out = await state.batcher.predict(xs)
            rows = adapter.answer(out, stamps)
            H, n = adapter.spec.horizon, len(rows)
            outputs = [{"name": "forecast", "datatype": "FP32", "shape": [n, H], "data": [v for r in rows for v in r["forecast"]]}]
            if adapter.spec.quantiles:
                Q = len(adapter.spec.quantiles)
                outputs.append({"name": "quantiles", "datatype": "FP32", "shape": [n, H, Q], "data": np.asarray(out).reshape(-1).tolist()})
            if stamps[0] is not None:
                outputs.append({"name": "timestamps", "datatype": "BYTES", "shape": [n, H], "data": [t for s in stamps for t in s]})
            reply = {"model_name": served.name, "model_version": "1", "outputs": outputs}
            if "id" in body:
                reply["id"] = body["id"]
            return JSONResponse(reply)

        @router.post("/predict")
        async def predict(request: Request):
            """One history (a list of numbers, or {"history": [...], "timestamps": [...]}) or a list of such objects."""
            from kiln.serve.routes import state_of

            state = state_of(request)
            body = await read_json_any(request)
            many = isinstance(body, list) and bool(body) and all(isinstance(b, dict) for b in body)
            items = body if many else [body]
            xs, stamps = [], []
            for i, item in enumerate(items):
                where = f"[{i}]" if many else "history"
                if isinstance(item, dict):
                    if "history" not in item:
                        raise ApiError(400, 'send {"history": [v1, v2, ...]} (and optionally "timestamps": the last time or all)')
                    xs.append(adapter.window(item["history"], where))
                    stamps.append(adapter.times(item.get("timestamps"), f"{where}.timestamps"))
                else:
                    xs.append(adapter.window(item, where))
                    stamps.append(None)
            answers = adapter.answer(await state.batcher.predict(np.stack(xs)), stamps)
            return JSONResponse(answers if many else answers[0])

        return list(router.routes)

    def page(self, state) -> str:
        """GET /: paste a history, see the forecast drawn after it (and its intervals with quantiles)."""
        import html
        import json

        s = self.spec
        key = "" if not (state and state.api_key) else "<p>This server needs an API key: <input id='key' placeholder='API key'></p>"
        config = json.dumps({"lookback": s.lookback, "horizon": s.horizon}).replace("<", "\\u003c")
        return ("<!doctype html><html><head><meta charset='utf-8'><title>Kiln forecast: " + html.escape(self.served.name) + "</title>"
                "<style>body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto}textarea{width:100%;height:7rem}"
                "svg{border:1px solid #ddd;background:#fafafa}</style></head><body>"
                f"<h1>{html.escape(self.served.name)}</h1><p>{html.escape(self.describe())}"
                f"{html.escape('; channels: target, ' + ', '.join(s.covariates) if s.covariates else '')}</p>{key}"
                f"<form id='f'><label>The last {s.lookback} (or more) values, comma or space separated<br>"
                "<textarea id='h'></textarea></label><br><label>Last timestamp (optional) <input id='t'></label> "
                "<button>Forecast</button></form><svg id='plot' width='800' height='260'></svg><pre id='out'></pre><script>"
                f"const KILN={config};"
                "function draw(h,f){const all=h.concat(f),lo=Math.min(...all),hi=Math.max(...all),n=all.length,W=800,H=260;"
                "const x=i=>10+i*(W-20)/Math.max(n-1,1),y=v=>H-10-(v-lo)*(H-20)/((hi-lo)||1);"
                "const path=(v,o)=>v.map((a,i)=>(i?'L':'M')+x(i+o).toFixed(1)+' '+y(a).toFixed(1)).join(' ');"
                "document.getElementById('plot').innerHTML=`<path d='${path(h,0)}' stroke='#4c72b0' fill='none'/>`"
                "+`<path d='${path([h[h.length-1]].concat(f),h.length-1)}' stroke='#dd8452' fill='none' stroke-width='2'/>`;}"
                "document.getElementById('f').onsubmit=async e=>{e.preventDefault();"
                "const h=document.getElementById('h').value.split(/[\\s,;]+/).filter(v=>v).map(Number);"
                "const body={history:h};const t=document.getElementById('t').value;if(t)body.timestamps=t;"
                "const hd={'Content-Type':'application/json'};const k=document.getElementById('key');if(k&&k.value)hd['X-API-Key']=k.value;"
                "const r=await fetch('/predict',{method:'POST',headers:hd,body:JSON.stringify(body)});const a=await r.json();"
                "document.getElementById('out').textContent=JSON.stringify(a,null,2);"
                "if(a.forecast)draw(h.slice(-KILN.lookback),a.forecast);};</script></body></html>")

    def metadata(self) -> dict:
        s = self.spec
        outs = [{"name": "forecast", "datatype": "FP32", "shape": [-1, s.horizon]}]
        if s.quantiles:
            outs.append({"name": "quantiles", "datatype": "FP32", "shape": [-1, s.horizon, len(s.quantiles)]})
        return {"name": self.served.name, "versions": ["1"], "platform": self.served.platform,
                "inputs": [{"name": "history", "datatype": "FP32", "shape": [-1, s.lookback, s.channels]},
                           {"name": "timestamps", "datatype": "BYTES", "shape": [-1], "optional": True}],
                "outputs": outs + [{"name": "timestamps", "datatype": "BYTES", "shape": [-1, s.horizon]}],
                "parameters": {"frequency": s.freq, "lookback": s.lookback, "horizon": s.horizon, "quantiles": s.quantiles,
                               "channels": ["target", *s.covariates]}}

    def warm(self, state) -> None:
        """Every batch size the model will see, before the first request."""
        state.batcher.shape = (self.spec.lookback, self.spec.channels)
        for n in state.batcher.buckets:
            self.served.predictor(np.zeros((n, self.spec.lookback, self.spec.channels), np.float32))

    def describe(self) -> str:
        s = self.spec
        return f"history {s.lookback}x{s.channels} float32 -> {s.horizon} steps at {s.freq}"


__all__ = ["SeriesAdapter", "signature"]
