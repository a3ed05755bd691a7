"""Serving text: TF Serving REST `{"instances": ["text", ...]}`, KServe v2 with a `BYTES` input, `/predict` with
a text field (or a text/plain body), and a page with a text box. Every text goes through the shared
micro-batcher; exports that take token ids (TFLite, ONNX) get them from the export's vocabulary.txt and
tokenizer.json through Kiln's own tokenizer (the code the export ships as tokenizer.py; the server never runs an export's code).

Empty texts and bodies that are not UTF-8 get a 400; a text over the run's `max_chars` is truncated
(`text.on_long=truncate`, the default) or answered 400 (`on_long=reject`). Never a 5xx for a request's content.
"""

from __future__ import annotations

import base64
import html
import json

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kiln.serve.errors import ApiError
from kiln.tasks.base import Adapter


def _clean(x) -> list[str]:
    """A batch as the batcher hands it over (its padding rows are not strings) -> strings."""
    return [v if isinstance(v, str) else "" for v in np.asarray(x, dtype=object).ravel()]


class TextAdapter(Adapter):
    def __init__(self, served):
        super().__init__(served)
        from kiln.tasks.base import task_of

        self.task = getattr(served, "task", None) or task_of(served.meta)
        self.spec = self.task.load_spec(served.meta)
        self.on_long = self.spec.on_long
        raw = served.predictor
        if served.signature is not None and served.signature.inputs[0].name == "token_ids":  # a TFLite / ONNX export
            from kiln.tasks.text.tokenize import Tokenizer

            # Kiln's own copy of the export's tokenizer.py, fed the export's vocabulary.txt and tokenizer.json: an
            # export folder's code is never run by the server (as model.keras is loaded in safe mode)
            try:
                tok = Tokenizer.load(served.source)
            except (OSError, ValueError, KeyError, TypeError) as err:
                from kiln.errors import bad_file

                raise bad_file(served.source / "tokenizer.json", f"the export's tokenizer files cannot be read ({type(err).__name__})",
                               "Export the run again with kiln export") from None
            served.predictor = lambda x: raw(tok.ids(_clean(x)))
        else:
            served.predictor = lambda x: raw(np.asarray(_clean(x), dtype=object))

    # --- requests -> texts ------------------------------------------------------------------------
    def texts(self, values, where: str) -> np.ndarray:
        if not isinstance(values, list) or not values:
            raise ApiError(400, f"{where}: expected a non-empty list of texts")
        out = []
        for i, v in enumerate(values):
            if isinstance(v, dict):
                v = v.get("text", v.get("b64"))
                if isinstance(v, dict) and "b64" in v:
                    v = v["b64"]
            if isinstance(v, list) and len(v) == 1:
                v = v[0]
            if not isinstance(v, str):
                raise ApiError(400, f"{where}[{i}]: expected a string, got {type(v).__name__}")
            if not v.strip():
                raise ApiError(400, f"{where}[{i}]: the text is empty")
            if len(v) > self.spec.max_chars:
                if self.on_long == "reject":
                    raise ApiError(400, f"{where}[{i}]: the text has {len(v):,} characters, over this model's max_chars "
                                        f"{self.spec.max_chars:,}")
                v = v[: self.spec.max_chars]
            out.append(v)
        return np.asarray(out, dtype=object)

    async def body(self, request: Request):
        raw = await request.body()
        if not raw:
            raise ApiError(400, "the request body is empty")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ApiError(400, f"the body is not UTF-8 (byte {err.start})") from None
        if request.headers.get("content-type", "").startswith("text/plain"):
            return {"text": text}
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ApiError(400, f"malformed JSON ({err})") from None

    async def scores(self, state, texts: np.ndarray) -> np.ndarray:
        return np.asarray(await state.batcher.predict(texts))

    def answers(self, probs: np.ndarray, top_k: int) -> list[dict]:
        from kiln.serve.model import decide

        classes = self.served.classes
        picks = decide(probs, self.served.threshold if len(classes) == 2 else None)
        k = max(1, min(int(top_k), len(classes)))
        t = self.served.threshold
        stated = {} if len(classes) != 2 else {"threshold": 0.5 if t is None else float(t)}  # the cut the label came from
        out = []
        for p, i in zip(probs, picks):
            order = np.argsort(-p)[:k]
            out.append({"label": classes[int(i)], "score": float(p[int(i)]), "top_k": [[classes[j], float(p[j])] for j in order],
                        **stated})
        return out

    # --- protocols --------------------------------------------------------------------------------------
    def metadata(self) -> dict:
        s = self.served
        return {"name": s.name, "versions": ["1"], "platform": s.platform,
                "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
                "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, len(s.classes)]},
                            {"name": "label", "datatype": "BYTES", "shape": [-1]}],
                "parameters": {"classes": s.classes, "max_chars": self.spec.max_chars, "on_long": self.on_long,
                               "sequence_length": self.spec.sequence_length}}

    def routes(self) -> list:
        from kiln.serve.routes import served_model, state_of

        router = APIRouter()
        adapter = self

        @router.post("/v2/models/{name}/infer")
        async def v2_infer(request: Request, name: str):
            state, served = served_model(request, name)
            body = await adapter.body(request)
            inputs = body.get("inputs") if isinstance(body, dict) else None
            if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
                raise ApiError(400, 'expected {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [N], "data": [...]}]}')
            tensor = inputs[0]
            if tensor.get("datatype", "BYTES") != "BYTES":
                raise ApiError(400, f"inputs[0].datatype: expected BYTES, got {tensor.get('datatype')}")
            data = tensor.get("data")
            if isinstance(data, list) and data and isinstance(data[0], list):
                data = [v for row in data for v in row]
            if (tensor.get("parameters") or {}).get("content_type") == "base64" and isinstance(data, list):
                try:
                    data = [base64.b64decode(v).decode("utf-8") for v in data]
                except (ValueError, UnicodeDecodeError):
                    raise ApiError(400, "inputs[0].data: base64 that does not decode to UTF-8 text") from None
            probs = await adapter.scores(state, adapter.texts(data, "inputs[0].data"))
            labels = [a["label"] for a in adapter.answers(probs, 1)]
            return {"model_name": served.name, "model_version": "1", "outputs": [
                {"name": "probabilities", "datatype": "FP32", "shape": list(probs.shape), "data": probs.ravel().tolist()},
                {"name": "label", "datatype": "BYTES", "shape": [len(labels)], "data": labels}]}

        @router.post("/v1/models/{name}:predict")
        async def v1_predict(request: Request, name: str):
            state, _ = served_model(request, name)
            body = await adapter.body(request)
            if not isinstance(body, dict) or not ("instances" in body or "inputs" in body):
                raise ApiError(400, 'expected {"instances": ["text", ...]} or {"inputs": ["text", ...]}')
            key = "instances" if "instances" in body else "inputs"
            values = body[key]
            if isinstance(values, dict) and isinstance(values.get("text"), list):  # columnar {"inputs": {"text": [...]}}
                values = values["text"]
            probs = await adapter.scores(state, adapter.texts(values, key))
            return {"predictions" if key == "instances" else "outputs": probs.tolist()}

        @router.get("/v1/models/{name}/metadata")
        async def v1_metadata(request: Request, name: str):
            served_model(request, name)
            return {"model_spec": {"name": adapter.served.name, "version": "1"}, "metadata": adapter.metadata()}

        @router.post("/predict")
        async def predict(request: Request):
            state = state_of(request)
            body = await adapter.body(request)
            if not isinstance(body, dict) or not ("text" in body or "texts" in body):
                raise ApiError(400, 'expected {"text": "..."} or {"texts": ["...", ...]} (or a text/plain body)')
            many = "texts" in body
            texts = adapter.texts(body["texts"] if many else [body["text"]], "texts" if many else "text")
            answers = adapter.answers(await adapter.scores(state, texts), body.get("top_k", state.task_opts.top_k) if isinstance(body.get("top_k", 1), int) else 1)
            return JSONResponse(answers if many else answers[0])

        return list(router.routes)

    def warm(self, state) -> None:
        """Every batch size the batcher will call the model with, once, before the first request."""
        from kiln.serve.batching import bucket_sizes

        for n in bucket_sizes(state.opts.max_batch_size):
            state.batcher.predict_fn(np.asarray(["warm up"] * n, dtype=object))

    def describe(self) -> str:
        return f"{len(self.served.classes)} classes, input text (BYTES), {self.spec.sequence_length} tokens"

    def page(self, state) -> str:
        s = self.served
        key = "" if not (state and state.api_key) else "<p>This server needs an API key: <input id='key' placeholder='API key'></p>"
        return ("<!doctype html><html><head><meta charset='utf-8'><title>Kiln text model</title>"
                "<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto}textarea{width:100%;height:9rem}</style>"
                f"</head><body><h1>{html.escape(s.name)}</h1><p>{len(s.classes)} classes: {html.escape(', '.join(s.classes[:20]))}</p>{key}"
                "<form id='f'><textarea id='text' name='text' placeholder='Type or paste a text'></textarea><br>"
                "<button>Classify</button></form><pre id='out'></pre><script>"
                "document.getElementById('f').onsubmit=async e=>{e.preventDefault();const h={'Content-Type':'application/json'};"
                "const k=document.getElementById('key');if(k&&k.value)h['X-API-Key']=k.value;"
                "const r=await fetch('/predict',{method:'POST',headers:h,body:JSON.stringify({text:document.getElementById('text').value})});"
                "document.getElementById('out').textContent=JSON.stringify(await r.json(),null,2)};</script></body></html>")


__all__ = ["TextAdapter"]
