"""The table adapter's HTTP routes: every request's rows go through the spine's micro-batcher as
`Pending` rows (decoded once per batch by TableAdapter.decode); a bad request is an ApiError 400."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kiln.serve.batching import Pending
from kiln.serve.errors import ApiError
from kiln.serve.routes import served_model, state_of


async def _body(request: Request):
    import json

    raw = await request.body()
    if not raw:
        raise ApiError(400, "the request body is empty; send JSON")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"the body is not valid JSON ({err})") from None


def build_routes(adapter) -> list:
    from kiln.tasks.table.adapter import RowError

    router = APIRouter()

    async def score(request: Request, rows) -> np.ndarray:
        """Checked rows -> the model's outputs through the micro-batcher; a RowError anywhere is a 400."""
        try:
            checked = adapter.rows(rows)
            return await state_of(request).batcher.predict(Pending(checked))
        except RowError as err:
            raise ApiError(400, str(err)) from None

    def v1_target(target: str):
        """'people:predict', 'people/versions/1:predict', 'people/metadata' -> (name, verb)."""
        name, _, verb = target.partition(":")
        parts = name.split("/")
        if len(parts) >= 3 and parts[1] == "versions":
            if parts[2] != "1":
                raise ApiError(404, f"model '{parts[0]}' has no version '{parts[2]}'; the only version is '1'")
            parts = [parts[0], *parts[3:]]
        return parts[0], "/".join(parts[1:]), verb

    @router.post("/v1/models/{target:path}")
    async def v1_post(request: Request, target: str):
        name, rest, verb = v1_target(target)
        served_model(request, name)
        if rest or verb != "predict":
            raise ApiError(404, f"not found: POST /v1/models/{target}; use POST /v1/models/{name}:predict")
        body = await _body(request)
        if isinstance(body, dict) and "instances" in body:
            return JSONResponse({"predictions": (await score(request, body["instances"])).tolist()})
        if isinstance(body, dict) and "inputs" in body:
            try:
                rows = adapter.columnar(body["inputs"])
            except RowError as err:
                raise ApiError(400, str(err)) from None
            return JSONResponse({"outputs": (await score(request, rows)).tolist()})
        raise ApiError(400, 'expected {"instances": [{column: value, ...}]} or {"inputs": {column: [values]}}')

    @router.get("/v1/models/{target:path}")
    async def v1_get(request: Request, target: str):
        name, rest, _ = v1_target(target)
        served_model(request, name)
        if rest == "metadata":
            return adapter.metadata()
        if rest:
            raise ApiError(404, f"not found: GET /v1/models/{target}")
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE" if state_of(request).ready else "LOADING",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    @router.post("/v2/models/{name}/infer")
    @router.post("/v2/models/{name}/versions/{version}/infer")
    async def v2_infer(request: Request, name: str, version: str | None = None):
        served_model(request, name, version)
        body = await _body(request)
        try:
            rows = adapter.kserve_rows(body)
        except RowError as err:
            raise ApiError(400, str(err)) from None
        out = await score(request, rows)
        if adapter.spec.classes:
            outputs = [{"name": "probabilities", "datatype": "FP32", "shape": list(out.shape), "data": out.ravel().tolist()},
                       {"name": "label", "datatype": "BYTES", "shape": [len(out)], "data": adapter.labels(out)}]
        else:
            outputs = [{"name": "prediction", "datatype": "FP32", "shape": list(out.shape), "data": out.ravel().tolist()}]
        reply = {"model_name": adapter.name, "model_version": "1", "outputs": outputs}
        if isinstance(body, dict) and "id" in body:
            reply["id"] = body["id"]
        return JSONResponse(reply)

    @router.post("/predict")
    async def predict(request: Request):
        body = await _body(request)
        rows = body if isinstance(body, list) else [body]
        answers = adapter.answers(await score(request, rows))
        return JSONResponse(answers[0] if isinstance(body, dict) else answers)

    return list(router.routes)


__all__ = ["build_routes"]
