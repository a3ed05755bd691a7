"""The three HTTP protocols for images, all answered through the shared micro-batcher (health and
server metadata are the spine's, kiln/serve/routes.py):

- Open Inference Protocol (KServe v2): /v2/models/{name}[/ready], /v2/models/{name}/infer
- TF Serving REST: GET /v1/models/{name}[/metadata], POST /v1/models/{name}:predict
- POST /predict: one multipart image upload (or a raw image body) -> top-k labels and scores
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kiln.serve.errors import ApiError
from kiln.serve.model import decide
from kiln.serve.routes import read_json as _json
from kiln.serve.routes import served_model as _model
from kiln.serve.routes import state_of as _state
from kiln.tasks.image.serve.inputs import b64_bytes, pixels, prepare_images

router = APIRouter()
OUTPUTS = ("probabilities", "label")
VALUE_OUTPUTS = ("value",)  # a numeric target (image regression)


def _outputs(served) -> tuple[str, ...]:
    return OUTPUTS if served.classes else VALUE_OUTPUTS


INLINE_BYTES = 64 * 1024  # encoded images up to this size in all are checked on the event loop


async def _prepare(state, blobs: list[bytes]) -> list:
    """Check encoded images (header, pixel limit) -> rows for the batcher: bytes that the micro-batch
    decodes in one call, or (H, W, C) arrays for files only Pillow decodes. Reading a small image's
    header takes ~0.1 ms, less than a hop to a thread; big ones go to a thread."""
    served = state.model
    if sum(len(b) for b in blobs) <= INLINE_BYTES:
        return prepare_images(blobs, served.spec, state.task_opts.max_pixels)
    return await asyncio.to_thread(prepare_images, blobs, served.spec, state.task_opts.max_pixels)


# ---- Open Inference Protocol v2 -------------------------------------------------------------------------

def _v2_metadata(served) -> dict:
    h, w, c = served.spec.shape
    if served.classes:
        outputs = [{"name": "probabilities", "datatype": "FP32", "shape": [-1, len(served.classes)]},
                   {"name": "label", "datatype": "BYTES", "shape": [-1]}]
        about = {"classes": served.classes}
    else:
        outputs = [{"name": "value", "datatype": "FP32", "shape": [-1, 1]}]
        about = {"target": served.meta.get("target")}
    return {
        "name": served.name,
        "versions": ["1"],
        "platform": served.platform,
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, h, w, c]}],
        "outputs": outputs,
        "parameters": {**about, "quantize": served.quantize,
                       "input": "UINT8 [N, H, W, C] raw pixels, or BYTES [N] base64-encoded image files"},
    }


async def _v2_images(state, tensor: dict):
    served = state.model
    if not isinstance(tensor, dict):
        raise ApiError(400, "each entry of inputs must be an object with name, shape, datatype and data")
    if tensor.get("name") != "image":
        raise ApiError(400, f"unknown input '{tensor.get('name')}'; this model has one input named 'image'")
    shape, datatype, data = tensor.get("shape"), str(tensor.get("datatype", "")).upper(), tensor.get("data")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ApiError(400, "input 'image' needs shape, a list of whole numbers")
    if not isinstance(data, list):
        raise ApiError(400, "input 'image' needs data, a list")
    h, w, c = served.spec.shape
    if datatype == "UINT8":
        if len(shape) != 4 or shape[0] < 1 or tuple(shape[1:]) != served.spec.shape:
            raise ApiError(400, f"input 'image' has shape {shape}; UINT8 input must be [N, {h}, {w}, {c}] with N >= 1")
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError):
            raise ApiError(400, "input 'image' data is not a rectangular array of numbers") from None
        if arr.size != int(np.prod(shape)):
            raise ApiError(400, f"input 'image' has {arr.size} values but shape {shape} needs {int(np.prod(shape))}")
        return pixels(arr.reshape(shape) if arr.dtype != object else arr, served.spec.shape, "input 'image'", batch=True)
    if datatype == "BYTES":
        if len(shape) not in (1, 2) or shape[0] < 1 or (len(shape) == 2 and shape[1] != 1) or len(data) != shape[0]:
            raise ApiError(400, f"input 'image' has shape {shape} and {len(data)} values; BYTES input must be [N] "
                                "(one base64-encoded image file per element)")
        blobs = [b64_bytes(v, f"input 'image' element {i}") for i, v in enumerate(data)]
        return await _prepare(state, blobs)
    raise ApiError(400, f"input 'image' has datatype {tensor.get('datatype')!r}; use UINT8 (pixels) or BYTES (encoded images)")


@router.post("/v2/models/{name}/infer")
@router.post("/v2/models/{name}/versions/{version}/infer")
async def v2_infer(request: Request, name: str, version: str | None = None):
    state, served = _model(request, name, version)
    body = await _json(request)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise ApiError(400, "inputs must be a list holding one tensor named 'image'")
    wanted = body.get("outputs")
    known = _outputs(served)
    if wanted is None:
        names = list(known)
    else:
        if not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
            raise ApiError(400, "outputs must be a list of objects with a name")
        names = [o.get("name") for o in wanted]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ApiError(400, f"unknown output '{unknown[0]}'; outputs are {', '.join(known)}")
    images = await _v2_images(state, inputs[0])
    probs = await state.batcher.predict(images)
    n, k = probs.shape
    outputs = []
    for out in names:
        if out == "value":
            outputs.append({"name": "value", "datatype": "FP32", "shape": [n, k], "data": probs.reshape(-1).tolist()})
        elif out == "probabilities":
            outputs.append({"name": "probabilities", "datatype": "FP32", "shape": [n, k], "data": probs.reshape(-1).tolist()})
        else:
            labels = [served.classes[i] for i in decide(probs, served.threshold)]
            outputs.append({"name": "label", "datatype": "BYTES", "shape": [n], "data": labels})
    reply = {"model_name": served.name, "model_version": "1", "outputs": outputs}
    if "id" in body:
        reply["id"] = body["id"]
    return JSONResponse(reply)  # plain JSON types already: skips FastAPI's per-element encoder


# ---- TF Serving REST --------------------------------------------------------------------------------------

def _v1_target(request: Request, target: str, verb: str | None):
    """'tiny', 'tiny/versions/1', 'tiny/metadata' ... -> (state, served, rest)."""
    parts = target.split("/")
    name, rest = parts[0], parts[1:]
    version = None
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = rest[1], rest[2:]
    state, served = _model(request, name, version)
    return state, served, "/".join(rest)


@router.get("/v1/models/{target:path}")
async def v1_get(request: Request, target: str):
    state, served, rest = _v1_target(request, target, None)
    if rest == "":
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE" if state.ready else "UNAVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}
    if rest == "metadata":
        h, w, c = served.spec.shape
        dims = lambda *d: {"dim": [{"size": str(x)} for x in d]}  # noqa: E731
        out = "probabilities" if served.classes else "value"
        return {"model_spec": {"name": served.name, "signature_name": "", "version": "1"},
                "metadata": {"signature_def": {"signature_def": {"serving_default": {
                    "inputs": {"image": {"dtype": "DT_UINT8", "tensor_shape": dims(-1, h, w, c), "name": "image"}},
                    "outputs": {out: {"dtype": "DT_FLOAT", "tensor_shape": dims(-1, len(served.classes or [None])), "name": out}},
                    "method_name": "tensorflow/serving/predict"}}}},
                **({"classes": served.classes} if served.classes else {"target": served.meta.get("target")})}
    raise ApiError(404, f"no such TF Serving resource: /v1/models/{target}")


async def _v1_instances(state, instances, where: str):
    """-> (N, H, W, C) uint8 pixels, or a list of rows (encoded bytes or pixels) for the batcher."""
    served = state.model
    if not isinstance(instances, list) or not instances:
        raise ApiError(400, f"{where} must be a non-empty list")
    slots: list = [None] * len(instances)
    blobs, blob_at = [], []
    for i, inst in enumerate(instances):
        item = f"{where}[{i}]"
        if isinstance(inst, dict) and "image" in inst and len(inst) == 1:
            inst, item = inst["image"], f"{where}[{i}].image"
        if isinstance(inst, dict):
            if set(inst) != {"b64"}:
                raise ApiError(400, f"{item} must be {{\"b64\": \"<base64 image>\"}}, a pixel array, or {{\"image\": ...}}")
            blobs.append(b64_bytes(inst, item))
            blob_at.append(i)
        else:
            slots[i] = pixels(inst, served.spec.shape, item, batch=False)
    if not blobs:
        return np.stack(slots)
    for i, row in zip(blob_at, await _prepare(state, blobs)):
        slots[i] = row
    return slots


@router.post("/v1/models/{target:path}")
async def v1_post(request: Request, target: str):
    if not target.endswith(":predict"):
        verb = target.rsplit(":", 1)[1] if ":" in target else ""
        raise ApiError(404 if not verb else 400, f"unsupported TF Serving call '{verb or target}'; use POST /v1/models/NAME:predict")
    state, served, rest = _v1_target(request, target[: -len(":predict")], "predict")
    if rest:
        raise ApiError(404, f"no such TF Serving resource: /v1/models/{target}")
    body = await _json(request)
    signature = body.get("signature_name", "serving_default")
    if signature not in ("serving_default", "", None):
        raise ApiError(400, f"unknown signature_name '{signature}'; the only signature is serving_default")
    if ("instances" in body) == ("inputs" in body):
        raise ApiError(400, 'send exactly one of "instances" (row format) or "inputs" (columnar format)')
    if "instances" in body:
        images = await _v1_instances(state, body["instances"], "instances")
        key = "predictions"
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict):
            if set(inputs) != {"image"}:
                raise ApiError(400, "inputs must be a list of images or {\"image\": [...]}")
            inputs = inputs["image"]
        images = await _v1_instances(state, inputs, "inputs")
        key = "outputs"
    probs = await state.batcher.predict(images)
    return JSONResponse({key: probs.tolist()})


# ---- POST /predict ------------------------------------------------------------------------------------------

def _top_k(value, k_max: int) -> int:
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"top_k must be a whole number, got {value!r}") from None
    if k < 1:
        raise ApiError(400, f"top_k must be at least 1, got {k}")
    return min(k, k_max)


@router.post("/predict")
async def predict(request: Request):
    started = time.perf_counter()
    state = _state(request)
    served = state.model
    ctype = request.headers.get("content-type", "")
    top_k = request.query_params.get("top_k")
    if ctype.startswith("multipart/form-data"):
        try:
            form = await request.form()
        except ApiError:
            raise
        except Exception as err:
            raise ApiError(400, f"malformed multipart body ({getattr(err, 'detail', err)})") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            upload = next((v for v in form.values() if not isinstance(v, str)), None)
        if upload is None:
            raise ApiError(400, "no image in the form; send it as a file field named 'file'")
        data = await upload.read()
        if top_k is None and isinstance(form.get("top_k"), str):
            top_k = form.get("top_k")
    elif ctype.startswith("image/") or ctype.startswith("application/octet-stream"):
        data = await request.body()
    else:
        raise ApiError(400, f"unsupported content type '{ctype or 'none'}'; send multipart/form-data with a 'file' field "
                            "or a raw image body (image/*)")
    probs = (await state.batcher.predict(await _prepare(state, [data])))[0]
    if not served.classes:  # a numeric target: the value
        return JSONResponse({"model": served.name, "value": float(probs[0]), "target": (served.meta.get("target") or {}).get("name"),
                             "latency_ms": round((time.perf_counter() - started) * 1000, 3)})
    k = _top_k(top_k if top_k is not None else state.task_opts.top_k, len(served.classes))
    order = np.argsort(-probs)[:k]
    label = served.classes[int(decide(probs[None], served.threshold)[0])]
    reply = {"model": served.name, "label": label, "score": float(probs[served.classes.index(label)]),
             "top_k": [{"label": served.classes[i], "score": float(probs[i])} for i in order],
             "latency_ms": round((time.perf_counter() - started) * 1000, 3)}
    if len(served.classes) == 2:  # the cut the label came from (0.5: argmax)
        reply["threshold"] = 0.5 if served.threshold is None else served.threshold
    return JSONResponse(reply)
