"""Routes and helpers every task's adapter shares: KServe v2 server metadata and health, a model's KServe v2
metadata (from its adapter) and readiness, request JSON, the served model by name. Task protocols
(kiln/tasks/<task>/...) add only what differs per task: inference and the TF Serving resources."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kiln.serve.errors import ApiError

router = APIRouter()


def state_of(request: Request):
    return request.app.state.kiln


def served_model(request: Request, name: str, version: str | None = None):
    state = state_of(request)
    served = state.model
    if name != served.name:
        raise ApiError(404, f"model '{name}' is not served here; this server serves '{served.name}'")
    if version is not None and version != "1":
        raise ApiError(404, f"model '{name}' has no version '{version}'; the only version is '1'")
    return state, served


async def read_json(request: Request) -> dict:
    body = await request.body()
    if not body:
        raise ApiError(400, "the request body is empty; send a JSON object")
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"malformed JSON ({err})") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the JSON body must be an object")
    return value


_V2_TYPES = {"f": "FP32", "i": "INT64", "u": "UINT8", "b": "BOOL"}


def v2_outputs(named: dict) -> list[dict]:
    """KServe v2 `outputs` for every named output of a batch ({name: (N, ...) array}), in the signature's order."""
    import numpy as np

    out = []
    for name, value in named.items():
        arr = np.asarray(value)
        out.append({"name": name, "datatype": _V2_TYPES.get(arr.dtype.kind, "BYTES"), "shape": list(arr.shape),
                    "data": arr.ravel().tolist()})
    return out


def tf_serving_predictions(named: dict):
    """TF Serving's row format: one value per instance for a single output, else one {name: value} object per instance."""
    import numpy as np

    arrays = {k: np.asarray(v) for k, v in named.items()}
    if len(arrays) == 1:
        return next(iter(arrays.values())).tolist()
    n = len(next(iter(arrays.values())))
    return [{k: v[i].tolist() for k, v in arrays.items()} for i in range(n)]


@router.get("/v2")
async def v2_server(request: Request):
    import kiln

    return {"name": "kiln", "version": kiln.__version__, "extensions": []}


@router.get("/v2/health/live")
async def v2_live():
    return {"live": True}


@router.get("/v2/health/ready")
async def v2_ready(request: Request):
    ready = state_of(request).ready
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


@router.get("/v2/models/{name}")
@router.get("/v2/models/{name}/versions/{version}")
async def v2_model_metadata(request: Request, name: str, version: str | None = None):
    state, _ = served_model(request, name, version)
    return state.adapter.metadata()


@router.get("/v2/models/{name}/ready")
@router.get("/v2/models/{name}/versions/{version}/ready")
async def v2_model_ready(request: Request, name: str, version: str | None = None):
    state, served = served_model(request, name, version)
    return JSONResponse({"name": served.name, "ready": state.ready}, status_code=200 if state.ready else 503)
