"""What an anomaly export is and how it is served.

Signature: raw inputs (a table's columns, each `(N, 1)`; or `window: float32 (N, W, C)` of raw series values)
-> `score: float32 (N,)` (the reduced reconstruction error) and `is_anomaly: float32 (N,)` (1.0 when the score
is above the run's threshold, which is baked into the graph). Every export runtime returns both.

Serving: tables take the table task's request forms (TF Serving `{"instances": [{col: v}]}` or columnar
`{"inputs": {col: [...]}}`, KServe v2 one input per column, `POST /predict` with one row or a list) and answer
`score` and `is_anomaly`; series take `{"instances": [window, ...]}` (each W x C, or W numbers for one column)
or a KServe v2 `window` FP32 tensor [N, W, C].
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kiln.serve.errors import ApiError
from kiln.serve.routes import read_json, served_model
from kiln.tasks.base import Adapter, Signature, TensorSpec


def signature(run) -> Signature:
    spec = run.spec
    threshold = float(run.meta.get("threshold") if run.meta.get("threshold") is not None else np.inf)
    if spec.kind == "table":
        inputs = tuple(TensorSpec(f.input, "string" if f.encoding == "category" else "float32", (1,)) for f in spec.table_spec.used)
    elif spec.kind == "image":
        inputs = (TensorSpec("image", "uint8", (spec.size, spec.size, spec.channels)),)
    else:
        inputs = (TensorSpec("window", "float32", (spec.window, len(spec.columns))),)
    single = None if spec.kind == "table" else inputs[0].name

    def call(model, x: dict) -> dict:
        from keras import ops

        errs = model(x[single] if single else x, training=False)
        score = ops.max(errs, axis=-1) if spec.reduction == "max" else ops.mean(errs, axis=-1)
        return {"score": score, "is_anomaly": ops.cast(ops.greater(score, threshold), "float32")}

    return Signature(inputs, (TensorSpec("score", "float32", ()), TensorSpec("is_anomaly", "float32", ())), call,
                     meta={"anomaly": spec.to_dict(), "threshold": threshold, "threshold_rule": run.meta.get("threshold_rule")})


def _threshold(served) -> float:
    t = served.meta.get("threshold") if served.meta else None
    return float(t) if t is not None else float(served.threshold if served.threshold is not None else np.inf)


def answers(scores: np.ndarray, threshold: float) -> list[dict]:
    return [{"score": float(s), "is_anomaly": bool(s > threshold)} for s in np.asarray(scores).reshape(-1)]


def _outputs(scores: np.ndarray, threshold: float) -> list[dict]:
    s = np.asarray(scores, np.float32).reshape(-1)
    return [{"name": "score", "datatype": "FP32", "shape": [len(s)], "data": s.tolist()},
            {"name": "is_anomaly", "datatype": "FP32", "shape": [len(s)], "data": (s > threshold).astype(np.float32).tolist()}]


def make_table_adapter(served):
    """The table task's request handling (rows checked, decoded a micro-batch at a time), anomaly answers."""
    from kiln.tasks.table.adapter import TableAdapter

    class AnomalyTableAdapter(TableAdapter):
        def __init__(self, served):
            Adapter.__init__(self, served)
            self.task, self.name = served.task, served.name
            spec = served.spec if served.spec is not None else self.task.load_spec(served.meta)
            self.anomaly, self.spec = spec, spec.table_spec
            self.threshold_value = _threshold(served)
            self.threshold, self._fast = None, None

        def answers(self, out):
            return answers(out, self.threshold_value)

        def metadata(self):
            meta = super().metadata()
            meta["outputs"] = [{"name": "score", "datatype": "FP32", "shape": [-1]}, {"name": "is_anomaly", "datatype": "FP32", "shape": [-1]}]
            meta["parameters"] = {"task": "anomaly", "threshold": self.threshold_value}
            return meta

        def describe(self):
            return f"anomaly score of {len(self.spec.used)} columns, threshold {self.threshold_value:.4g}"

        def routes(self):
            return table_routes(self)

    return AnomalyTableAdapter(served)


def table_routes(adapter) -> list:
    from kiln.serve.batching import Pending
    from kiln.serve.routes import state_of
    from kiln.tasks.table.adapter import RowError

    router = APIRouter()

    async def score(request: Request, rows) -> np.ndarray:
        try:
            return await state_of(request).batcher.predict(Pending(adapter.rows(rows)))
        except RowError as err:
            raise ApiError(400, str(err)) from None

    @router.post("/v1/models/{target:path}")
    async def v1(request: Request, target: str):
        name, _, verb = target.partition(":")
        served_model(request, name.split("/")[0])
        if verb != "predict":
            raise ApiError(404, f"not found: POST /v1/models/{target}; use POST /v1/models/{name}:predict")
        body = await read_json(request)
        try:
            rows = body["instances"] if "instances" in body else adapter.columnar(body.get("inputs"))
        except RowError as err:
            raise ApiError(400, str(err)) from None
        return JSONResponse({"predictions": answers(await score(request, rows), adapter.threshold_value)})

    @router.post("/v2/models/{name}/infer")
    @router.post("/v2/models/{name}/versions/{version}/infer")
    async def v2(request: Request, name: str, version: str | None = None):
        served_model(request, name, version)
        body = await read_json(request)
        try:
            rows = adapter.kserve_rows(body)
        except RowError as err:
            raise ApiError(400, str(err)) from None
        reply = {"model_name": adapter.name, "model_version": "1", "outputs": _outputs(await score(request, rows), adapter.threshold_value)}
        if "id" in body:
            reply["id"] = body["id"]
        return JSONResponse(reply)

    @router.post("/predict")
    async def predict(request: Request):
        raw = await request.body()
        import json

        try:
            body = json.loads(raw or b"null")
        except ValueError as err:
            raise ApiError(400, f"the body is not valid JSON ({err})") from None
        out = answers(await score(request, body if isinstance(body, list) else [body]), adapter.threshold_value)
        return JSONResponse(out[0] if isinstance(body, dict) else out)

    return list(router.routes)


class SeriesWindowAdapter(Adapter):
    """Windows of raw values in, score and is_anomaly out."""

    input_name = "window"

    def __init__(self, served):
        super().__init__(served)
        self.spec = served.spec if served.spec is not None else served.task.load_spec(served.meta)
        self.name, self.threshold_value = served.name, _threshold(served)

    def windows(self, instances) -> np.ndarray:
        w, c = self.spec.window, len(self.spec.columns)
        try:
            x = np.asarray(instances, np.float32)
        except (ValueError, TypeError):
            raise ApiError(400, f"expected windows of numbers, each {w} steps x {c} values") from None
        if x.ndim == 2 and c == 1:
            x = x[:, :, None]
        if x.ndim != 3 or x.shape[1:] != (w, c):
            raise ApiError(400, f"expected windows of shape [{w}, {c}] (got {list(x.shape[1:])}); send {{\"instances\": [window, ...]}}")
        if not np.isfinite(x).all():
            raise ApiError(400, "a window holds a missing or infinite value; fill it before scoring")
        return x

    def kserve(self, t: dict) -> np.ndarray:
        try:
            data = np.asarray(t["data"], np.float32)
            return self.windows(data.reshape(t["shape"]) if isinstance(t.get("shape"), list) else data)
        except ValueError as err:
            raise ApiError(400, f"input {self.input_name}: {err}") from None

    def metadata(self) -> dict:
        return {"name": self.name, "versions": ["1"], "platform": self.served.platform,
                "inputs": [{"name": "window", "datatype": "FP32", "shape": [-1, self.spec.window, len(self.spec.columns)]}],
                "outputs": [{"name": "score", "datatype": "FP32", "shape": [-1]}, {"name": "is_anomaly", "datatype": "FP32", "shape": [-1]}],
                "parameters": {"task": "anomaly", "columns": self.spec.columns, "threshold": self.threshold_value}}

    def describe(self) -> str:
        return f"anomaly score of windows {self.spec.window} x {len(self.spec.columns)} ({', '.join(self.spec.columns)}), threshold {self.threshold_value:.4g}"

    def routes(self) -> list:
        from kiln.serve.routes import state_of

        router, adapter = APIRouter(), self

        @router.post("/v1/models/{target:path}")
        async def v1(request: Request, target: str):
            name, _, verb = target.partition(":")
            served_model(request, name.split("/")[0])
            if verb != "predict":
                raise ApiError(404, f"not found: POST /v1/models/{target}")
            body = await read_json(request)
            out = await state_of(request).batcher.predict(adapter.windows(body.get("instances")))
            return JSONResponse({"predictions": answers(out, adapter.threshold_value)})

        @router.post("/v2/models/{name}/infer")
        @router.post("/v2/models/{name}/versions/{version}/infer")
        async def v2(request: Request, name: str, version: str | None = None):
            served_model(request, name, version)
            body = await read_json(request)
            t = next((t for t in body.get("inputs") or [] if isinstance(t, dict) and t.get("name") == adapter.input_name), None)
            if t is None or not isinstance(t.get("data"), list):
                raise ApiError(400, f'expected {{"inputs": [{{"name": "{adapter.input_name}", "shape": [...], "data": [...]}}]}}')
            x = adapter.kserve(t)
            out = await state_of(request).batcher.predict(x)
            return JSONResponse({"model_name": adapter.name, "model_version": "1", "outputs": _outputs(out, adapter.threshold_value)})

        return list(router.routes)


class ImageAdapter(SeriesWindowAdapter):
    """Images in (TF Serving `{"instances": [{"b64": FILE}, or pixels H x W x C]}`; KServe v2 `image` UINT8 [N, H, W, C]
    or BYTES of base64 files), resized as in training; score and is_anomaly out."""

    input_name = "image"

    def windows(self, instances) -> np.ndarray:
        from kiln.tasks.anomaly.images import decode

        if not isinstance(instances, list) or not instances:
            raise ApiError(400, 'expected {"instances": [{"b64": "<base64 image file>"}, ...]} or pixel arrays')
        try:
            return np.stack([decode(i, self.spec.size, self.spec.channels) for i in instances])
        except Exception as err:  # noqa: BLE001 - a bad image is the request's fault
            raise ApiError(400, f"an instance is not an image ({type(err).__name__}: {str(err)[:160]})") from None

    def kserve(self, t: dict) -> np.ndarray:
        if str(t.get("datatype", "")).upper() == "BYTES":
            return self.windows([{"b64": v} for v in t["data"]])
        data = np.asarray(t["data"])
        shape = t.get("shape") if isinstance(t.get("shape"), list) else [-1, self.spec.size, self.spec.size, self.spec.channels]
        try:
            return self.windows(list(data.reshape(shape)))
        except ValueError as err:
            raise ApiError(400, f"input image: {err}") from None

    def metadata(self) -> dict:
        s = self.spec
        return {"name": self.name, "versions": ["1"], "platform": self.served.platform,
                "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, s.size, s.size, s.channels]}],
                "outputs": [{"name": "score", "datatype": "FP32", "shape": [-1]}, {"name": "is_anomaly", "datatype": "FP32", "shape": [-1]}],
                "parameters": {"task": "anomaly", "threshold": self.threshold_value}}

    def describe(self) -> str:
        return f"anomaly score of images {self.spec.size}x{self.spec.size}x{self.spec.channels}, threshold {self.threshold_value:.4g}"


def adapter(served):
    spec = served.spec if served.spec is not None else served.task.load_spec(served.meta)
    return {"table": make_table_adapter, "image": ImageAdapter, "series": SeriesWindowAdapter}[spec.kind](served)


__all__ = ["adapter", "answers", "signature"]
