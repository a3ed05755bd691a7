"""`kiln serve RUN_DIR|EXPORT_DIR`: a FastAPI app over one model, run by uvicorn.

    app = create_app("runs/train", api_key="secret")   # an ASGI app; uvicorn or a test client runs it
    serve("runs/train", host="127.0.0.1", port=8000)   # blocks; SIGINT/SIGTERM drain in-flight requests

Every bad request gets `{"error": "..."}` with 400 (malformed JSON, wrong shape, undecodable image),
401 (missing or wrong API key), 404 (unknown model or route) or 413 (body or image too large).
An answer sent before the body was read waits until the rest of the body is read and discarded (up
to `drain_bytes`, as nginx's lingering close), so a client that sends its whole body before reading
(Python's urllib) reads the answer instead of a connection reset.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
import signal
import threading
import time
from contextlib import asynccontextmanager
from typing import Optional

from pydantic import Field

from kiln.config.schema import Section
from kiln.serve.errors import ApiError

log = logging.getLogger("kiln.serve")

OPEN_PATHS = {"/", "/favicon.ico", "/v2/health/live", "/v2/health/ready"}  # no API key needed
DRAIN_SECONDS = 10.0  # longest wait for the rest of a rejected body (nginx's lingering_timeout is 5 s per read)


class ServeOptions(Section):
    host: str = Field("127.0.0.1", description="interface to listen on (0.0.0.0 for every interface)")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 picks a free one)")
    name: Optional[str] = Field(None, description="model name in URLs (default: the run folder's name)")
    api_key: Optional[str] = Field(None, description="require this key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
    max_batch_size: int = Field(32, ge=1, le=4096, description="most examples per model call (1 turns micro-batching off)")
    max_delay_ms: float = Field(2.0, ge=0.0, le=1000.0, description="longest wait for more requests to fill a micro-batch")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest request body; bigger ones get 413")
    drain_bytes: int = Field(64 * 1024 * 1024, ge=0, description="most bytes of an unread body (413, 401, 404) read and dropped before answering, so clients that send it all first read the answer; 0 answers at once")
    graceful_timeout: float = Field(30.0, ge=0.0, description="seconds in-flight requests get to finish on shutdown")


class State:
    """What every handler reads: the model, its task's adapter, the batcher, the metrics and the limits."""

    def __init__(self, model, opts: ServeOptions, task_opts=None):
        from kiln.serve.batching import MicroBatcher
        from kiln.serve.metrics import Metrics

        self.model = model
        self.adapter = model.task.adapter(model)
        self.opts = opts
        self.task_opts = task_opts  # the task's own serving options (Task.serve_options: max_pixels, top_k, ...)
        self.api_key = opts.api_key
        self.max_body_bytes = opts.max_body_bytes
        self.metrics = Metrics(model.name)
        self.batcher = MicroBatcher(model.predictor, opts.max_batch_size, opts.max_delay_ms, self.metrics,
                                    decode=self.adapter.decode, all_outputs=self.adapter.all_outputs)
        self.ready = False


def _authorized(headers: dict[bytes, bytes], key: str) -> bool:
    given = headers.get(b"x-api-key")
    if given is None:
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
    if given is None:
        return False
    return hmac.compare_digest(given, key.encode())  # constant time


class Guard:
    """ASGI middleware: API key, body-size limit, in-flight count and per-route metrics for every request."""

    def __init__(self, app, state: State, routes):
        self.app, self.state, self.routes = app, state, routes

    def _route(self, scope) -> str:
        from starlette.routing import Match

        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            return route.path
        for r in self.routes:  # answered before routing (401, 413): find the route it was meant for
            if r.matches(scope)[0] == Match.FULL:
                return r.path
        return "other"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.responses import JSONResponse

        state, metrics = self.state, self.state.metrics
        started = time.perf_counter()
        code = {"status": 500}
        headers = dict(scope.get("headers") or [])
        body = {"done": False}

        async def receive_tracked():
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body["done"] = True
            return message

        async def send_tracked(message):
            if message["type"] == "http.response.start":
                code["status"] = message["status"]
                if not body["done"]:
                    await _drain(receive_tracked, body, headers, state.opts.drain_bytes)
            await send(message)

        metrics.request_started()
        try:
            if state.api_key and scope["path"] not in OPEN_PATHS and not _authorized(headers, state.api_key):
                await JSONResponse({"error": "missing or wrong API key; send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"},
                                   401, headers={"WWW-Authenticate": "Bearer"})(scope, receive_tracked, send_tracked)
                return
            length = headers.get(b"content-length")
            if length is not None:
                try:
                    too_big = int(length) > state.max_body_bytes
                except ValueError:
                    await JSONResponse({"error": "invalid Content-Length header"}, 400)(scope, receive_tracked, send_tracked)
                    return
                if too_big:
                    await JSONResponse({"error": f"the body has {int(length):,} bytes, over the server's limit of "
                                                 f"{state.max_body_bytes:,}"}, 413, headers={"Connection": "close"})(scope, receive_tracked, send_tracked)
                    return
            seen = 0

            async def receive_limited():
                nonlocal seen
                message = await receive_tracked()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > state.max_body_bytes:
                        raise ApiError(413, f"the body is over the server's limit of {state.max_body_bytes:,} bytes")
                return message

            await self.app(scope, receive_limited, send_tracked)
        finally:
            metrics.request_done(self._route(scope), code["status"], time.perf_counter() - started)


async def _drain(receive, body: dict, headers: dict[bytes, bytes], limit: int) -> None:
    """Read and drop the rest of a request body that will not be used, before its answer is sent.

    A server that answers and closes while the client is still sending resets the connection, and a
    client that writes its whole body before reading (urllib) never sees the answer. Nothing is read
    when the client waits for `100 Continue` (it sends no body unless asked), when Content-Length is
    over `limit`, or past `limit` bytes or DRAIN_SECONDS: then the answer goes out at once, as before."""
    if limit <= 0 or headers.get(b"expect", b"").lower() == b"100-continue":
        return
    try:
        if int(headers.get(b"content-length", 0)) > limit:
            return
    except ValueError:
        return
    read = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while not body["done"] and read <= limit:
                message = await receive()
                read += len(message.get("body", b""))
    except TimeoutError:
        log.info("serve: stopped reading a rejected body after %.0f s (%d bytes)", DRAIN_SECONDS, read)


def create_app(source, name: str | None = None, api_key: str | None = None, **options):
    """The FastAPI app for a run folder or an export folder; the model is loaded (safe mode) and warmed now."""
    import numpy as np
    from fastapi import APIRouter, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException

    import kiln
    from kiln.config import build
    from kiln.serve.metrics import CONTENT_TYPE
    from kiln.serve.model import load_served
    from kiln.serve.routes import router

    values = {k: v for k, v in dict(name=name, api_key=api_key, **options).items() if v is not None}
    opts, task_opts = split_options(source, values)
    served = load_served(source, opts.name)
    state = State(served, opts, task_opts)
    state.adapter.warm(state)  # decoders traced and every batch size the model will see, before the first request

    @asynccontextmanager
    async def lifespan(app):
        await state.batcher.start()
        state.ready = True
        log.info("serve: %s (%s) ready", served.name, served.platform)
        yield
        state.ready = False
        await state.batcher.stop()  # uvicorn has let in-flight requests finish by now

    app = FastAPI(title=f"Kiln: {served.name}", version=kiln.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.kiln = state

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return JSONResponse({"error": err.message}, status_code=err.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        detail = err.detail if isinstance(err.detail, str) else json.dumps(err.detail)
        if err.status_code == 404:
            detail = f"not found: {request.method} {request.url.path}"
        return JSONResponse({"error": detail}, status_code=err.status_code, headers=getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {"msg": "invalid request"}
        return JSONResponse({"error": f"{'.'.join(map(str, first.get('loc', [])))}: {first['msg']}"}, status_code=400)

    @app.exception_handler(Exception)
    async def server_error(request: Request, err: Exception):  # a Kiln bug or a model failure, never a bad request
        log.exception("serve: %s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(err).__name__})"}, status_code=500)

    page = state.adapter.page(state)
    if page is not None:
        @app.get("/", response_class=HTMLResponse)
        async def index():
            return HTMLResponse(page)

    @app.get("/metrics")
    async def metrics():
        return PlainTextResponse(state.metrics.render(), media_type=CONTENT_TYPE)

    task_routes = state.adapter.routes()  # the task's protocols
    app.include_router(router)
    app.include_router(APIRouter(routes=task_routes))
    # included routers do not list their routes in app.router.routes here; Guard matches against all of them
    routes = [r for r in app.router.routes if hasattr(r, "path")] + list(router.routes) + list(task_routes)
    app.add_middleware(Guard, state=state, routes=routes)
    return app


def serve(source, host: str = "127.0.0.1", port: int = 8000, name: str | None = None, api_key: str | None = None,
          **options) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests finish (up to graceful_timeout seconds)."""
    import uvicorn

    from kiln.config import build

    values = {k: v for k, v in dict(name=name, api_key=api_key, host=host, port=port, **options).items() if v is not None}
    _check_port(split_options(source, values)[0].host, int(values.get("port", 8000)))  # before loading the model
    app = create_app(source, **values)
    opts = app.state.kiln.opts
    served = app.state.kiln.model
    print(f"kiln: serving {served.name} ({served.platform}, {app.state.kiln.adapter.describe()}) on "
          f"http://{opts.host}:{opts.port}/  (Ctrl+C stops)", flush=True)
    # TensorFlow and the model leave ~440k long-lived objects: each full garbage collection scanning them
    # stalled the event loop ~0.2 s (a whole micro-batch's p99). Freeze them out of the collector's scans.
    gc.collect()
    gc.freeze()
    config = uvicorn.Config(app, host=opts.host, port=opts.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=opts.graceful_timeout, lifespan="on")
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal: make that a clean exit (0).
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_cleanly) if main_thread else None
    try:
        uvicorn.Server(config).run()
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def split_options(source, values: dict):
    """(ServeOptions, the task's own serving options or None) from one set of key=value options; a key neither knows
    is one line naming the closest of both (the task is read from run.json / export.json, before the model loads)."""
    import difflib

    from kiln.config import build
    from kiln.errors import ConfigError
    from kiln.serve.model import task_at

    task = task_at(source)
    own = task.serve_options if task is not None else None
    known = set(ServeOptions.model_fields) | set(own.model_fields if own else ())
    for key in values:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=2)
            hint = f"Did you mean {' or '.join(near)}?" if near else f"Valid keys: {', '.join(sorted(known))}"
            raise ConfigError(f"serve received unknown key {key}; it is not an option of kiln serve"
                              f"{f' for a {task.info.name} model' if task else ''}. {hint}")
    opts = build(ServeOptions, {k: v for k, v in values.items() if k in ServeOptions.model_fields}, "serve")
    task_opts = build(own, {k: v for k, v in values.items() if k in own.model_fields}, "serve") if own else None
    return opts, task_opts


def _check_port(host: str, port: int) -> None:
    """A one-line error for a port that is taken or an address that is not ours, before uvicorn starts."""
    import socket

    from kiln.errors import KilnError, received

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as err:
        raise KilnError(received("serve", "port", port, f"cannot listen on {host}:{port} ({err.strerror or err})",
                                 "Pick another port= (port=0 takes a free one) or host=")) from None


def _exit_cleanly(signum, frame):
    print("kiln: stopped; in-flight requests finished", flush=True)
    raise SystemExit(0)
