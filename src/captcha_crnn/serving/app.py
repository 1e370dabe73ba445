"""FastAPI app: /v1/recognize, /v1/recognize/batch, /v1/model, /healthz, and a web page at /; with
several models, /v1/models lists them and /v1/models/{name}/... serves each (the unnamed routes serve
the first). Each model has its own micro-batcher; with `reload_every` changed model files are swapped in
while serving (models.py).

Hostile input is answered, never crashes the worker: bodies over the limit get 413 (before they are read
in full), and so do batches over the image limit; files that are not images or in another format 415,
truncated images and images over the pixel limit 422, always as JSON `{"detail": message}`. Uploaded
bytes stay in memory: nothing is written to disk. Inference runs in a thread off the event loop through
the micro-batcher (batcher.py), which also answers 503 when its queue is full or it has stopped, 504 when
a request waits too long and 500 when the model fails, so that no request hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from captcha_crnn import __version__
from captcha_crnn.arithmetic import SOLVERS, check_solver
from captcha_crnn.data.images import header_pixels
from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.inference.recognizer import Recognizer
from captcha_crnn.serving.batcher import ApiError, MicroBatcher, Model
from captcha_crnn.serving.limits import ServeLimits
from captcha_crnn.serving.models import ModelSet, ServedModel, model_file, signature
from captcha_crnn.serving.page import PAGE
from captcha_crnn.serving.schemas import (
    BatchItem,
    Health,
    ModelInfo,
    ModelInput,
    ModelLimits,
    ModelList,
    ModelSummary,
    Recognition,
    error_responses,
)
from captcha_crnn.serving.threads import limit_threads

__all__ = ["ServeLimits", "app_from_env", "create_app", "create_models_app"]

MODEL_ENV = "CAPTCHA_CRNN_MODEL"  # the first (or only) model's file
MODELS_ENV = "CAPTCHA_CRNN_MODELS"  # JSON [[name, file], ...], all of them, the first being MODEL's
THREADS_ENV = "CAPTCHA_CRNN_THREADS"
SOLVE_ENV = "CAPTCHA_CRNN_SOLVE"  # "arithmetic" or empty
RELOAD_ENV = "CAPTCHA_CRNN_RELOAD"  # seconds between checks of the model files, or empty: no reloading
FOLDERS_ENV = "CAPTCHA_CRNN_FOLDERS"  # JSON [folder, ...] given on the command line: new files are served
TOO_MANY_FILES = "Too many files"  # how Starlette's multipart parser words a max_files refusal


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


if sys.version_info >= (3, 11):

    async def _within(awaitable: Awaitable[Message], seconds: float) -> Message:
        """`await awaitable`, TimeoutError after `seconds`; in the caller's task, where wait_for adds one
        (and with it a turn of the event loop, which reorders requests that arrive together)."""
        async with asyncio.timeout(seconds):
            return await awaitable
else:
    _within = asyncio.wait_for


class BodyLimitMiddleware:
    """413 for a body over the limit: from Content-Length at once, or while a chunked body streams in.
    408 for a body that has not fully arrived `timeout` seconds after the request: a client that stalls
    mid-upload would otherwise hold its connection, and its buffer, for ever (uvicorn has no such limit)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 30.0) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, 413, f"request body is larger than {self.max_bytes} bytes")
            return
        seen = 0
        started = False
        complete = False  # the whole body is in; later receives only wait for a disconnect
        deadline = asyncio.get_running_loop().time() + self.timeout

        async def limited_receive() -> Message:
            nonlocal seen, complete
            if complete:
                return await receive()
            try:
                message = await _within(receive(), deadline - asyncio.get_running_loop().time())
            except asyncio.TimeoutError:  # TimeoutError from 3.11; a class of its own on 3.10
                raise BodyTimeout from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, 413, f"request body is larger than {self.max_bytes} bytes")
        except BodyTimeout:
            if not started:
                await self._refuse(send, 408, f"request body did not arrive within {self.timeout:g} s")

    async def _refuse(self, send: Send, status: int, message: str) -> None:
        response = JSONResponse({"detail": message}, status_code=status, headers={"Connection": "close"})
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


IMAGE_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        },
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
    "required": True,
}
BATCH_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
            }
        }
    },
    "required": True,
}


def create_app(
    recognizer: Model,
    model_path: str,
    limits: ServeLimits | None = None,
    *,
    name: str | None = None,
    solve: str | None = None,
    reload_every: float | None = None,
    loader: Callable[[str], Model] = Recognizer.load,
) -> FastAPI:
    """The service for one model (named after its file unless `name` says otherwise)."""
    served = [(name or Path(model_path).stem or "model", recognizer, model_path)]
    return create_models_app(served, limits, solve=solve, reload_every=reload_every, loader=loader)


def create_models_app(
    models: Sequence[tuple[str, Model, str]],
    limits: ServeLimits | None = None,
    *,
    solve: str | None = None,
    reload_every: float | None = None,
    loader: Callable[[str], Model] = Recognizer.load,
    folders: Sequence[str] = (),
) -> FastAPI:
    """The service for (name, model, file) triples, the first also at the unnamed routes. `solve`
    ("arithmetic") adds each reading's answer; `reload_every` (seconds) polls the files and swaps in a
    changed one that loads through `loader` and passes a self-check, and serves new model files that
    appear in `folders`."""
    limits = limits or ServeLimits()
    if solve is not None:
        check_solver(solve)
    if reload_every is not None and not reload_every > 0:
        raise ValueError(f"reload_every must be positive, got {reload_every}")
    # Starlette spools uploads over 1 MB to a temporary file; keep every allowed upload in memory.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limits.max_body_bytes + 1)
    registry = ModelSet(
        [
            ServedModel(
                name, path, MicroBatcher(model, limits, solve), signature(path) if reload_every else None
            )
            for name, model, path in models
        ],
        loader,
        folders if reload_every else (),
        lambda model: MicroBatcher(model, limits, solve),
    )
    fields = limits.max_batch + 1  # non-file form fields allowed (and ignored)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for served in registry:
            served.batcher.start()
        gc.freeze()  # the models' and libraries' objects are permanent: no collection scans them again
        watcher = asyncio.create_task(registry.watch(reload_every)) if reload_every else None
        yield
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for served in registry:
            await served.batcher.stop()

    app = FastAPI(
        title="captcha-crnn",
        version=__version__,
        description="Reads the text in captcha-style images with a CRNN + CTC model. Every error is JSON "
        '`{"detail": "one line"}`.',
        lifespan=lifespan,
    )
    app.state.batcher = registry.default.batcher  # the first model's
    app.state.models = registry
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes, timeout=limits.request_timeout)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's list of problems, as the one line every other error is."""
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    async def recognize_one(
        served: ServedModel, request: Request, charset: str | None, solve: str | None, length: str | None
    ) -> dict[str, Any]:
        _check_reading(served.model, charset, solve, length)
        if _is_multipart(request):
            one = "send exactly one image file, or the image as the raw request body"
            files = await uploads(request, max_files=1, too_many=ApiError(400, one), max_fields=fields)
            if len(files) != 1:
                raise ApiError(400, one)
            item = files[0]
        else:
            item = ("body", await request.body())
        return (await served.batcher.submit([item], charset, solve, length))[0]

    async def recognize_many(
        served: ServedModel, request: Request, charset: str | None, solve: str | None, length: str | None
    ) -> list[dict[str, Any]]:
        _check_reading(served.model, charset, solve, length)
        if not _is_multipart(request):
            raise ApiError(415, "send the images as multipart/form-data file fields")
        too_many = ApiError(413, f"at most {limits.max_batch} images per batch")
        files = await uploads(request, max_files=limits.max_batch, too_many=too_many, max_fields=fields)
        if not files:
            raise ApiError(400, "no image files in the request")
        pixels = sum(header_pixels(data) for _, data in files)
        if pixels > limits.max_batch_pixels:
            raise ApiError(
                413,
                f"the images hold {pixels} pixels together, over the {limits.max_batch_pixels} one batch "
                "may hold; send them in smaller batches",
            )
        results = await served.batcher.submit(files, charset, solve, length)
        return [{"file": name, **r} for (name, _), r in zip(files, results)]

    one_image = {
        "response_model": Recognition,
        "response_model_exclude_unset": True,  # answer fields only when solving (--solve or ?solve=)
        "responses": error_responses(400, 408, 413, 415, 422, 500, 503, 504),
        "openapi_extra": {"requestBody": IMAGE_BODY},
    }
    many_images = {
        "response_model": list[BatchItem],
        "response_model_exclude_unset": True,
        "responses": error_responses(400, 408, 413, 415, 422, 500, 503, 504),
        "openapi_extra": {"requestBody": BATCH_BODY},
    }

    @app.post("/v1/recognize", **one_image)
    async def recognize(
        request: Request, charset: Charset = None, solve: Solve = None, length: ReadLength = None
    ) -> dict[str, Any]:
        """One image, as a multipart file field or as the raw request body (the first model)."""
        return await recognize_one(registry.default, request, charset, solve, length)

    @app.post("/v1/recognize/batch", **many_images)
    async def recognize_batch(
        request: Request, charset: Charset = None, solve: Solve = None, length: ReadLength = None
    ) -> list[dict[str, Any]]:
        """Several images as multipart file fields; the answers come in the same order. One bad image
        fails the whole request (with that image's error). The first model."""
        return await recognize_many(registry.default, request, charset, solve, length)

    @app.post(
        "/v1/models/{name}/recognize",
        **{**one_image, "responses": error_responses(400, 404, 408, 413, 415, 422, 500, 503, 504)},
    )
    async def recognize_with(
        name: str, request: Request, charset: Charset = None, solve: Solve = None, length: ReadLength = None
    ) -> dict[str, Any]:
        """One image read by the model called `name` (404 lists the names)."""
        return await recognize_one(registry.get(name), request, charset, solve, length)

    @app.post(
        "/v1/models/{name}/recognize/batch",
        **{**many_images, "responses": error_responses(400, 404, 408, 413, 415, 422, 500, 503, 504)},
    )
    async def recognize_batch_with(
        name: str, request: Request, charset: Charset = None, solve: Solve = None, length: ReadLength = None
    ) -> list[dict[str, Any]]:
        """Several images read by the model called `name`, answers in the same order."""
        return await recognize_many(registry.get(name), request, charset, solve, length)

    @app.get(
        "/healthz",
        response_model=Health,
        response_model_exclude_none=True,
        responses={503: {"model": Health, "description": "the inference loop has stopped, or hangs"}},
    )
    async def healthz() -> Health | JSONResponse:
        """ok while every model's inference loop runs; 503 with the reason once one has stopped, or
        while a pass has run past the request timeout."""
        for served in registry:
            if problem := served.batcher.problem or served.batcher.stalled:
                detail = problem if len(registry.by_name) == 1 else f"model {served.name}: {problem}"
                return JSONResponse(Health(status="unavailable", detail=detail).model_dump(), status_code=503)
        return Health(status="ok")

    @app.get("/v1/model", response_model=ModelInfo)
    async def model_info() -> ModelInfo:
        """The first model."""
        return _model_info(registry.default, limits, solve)

    @app.get("/v1/models", response_model=ModelList)
    async def list_models() -> ModelList:
        """Every model served, in the order given; `default` is the one the unnamed routes use."""
        summaries = [ModelSummary(**_summary(served)) for served in registry]
        return ModelList(models=summaries, default=registry.default.name)

    @app.get("/v1/models/{name}", response_model=ModelInfo, responses=error_responses(404))
    async def named_model_info(name: str) -> ModelInfo:
        return _model_info(registry.get(name), limits, solve)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE

    return app


Charset = Annotated[
    str | None,
    Query(
        max_length=512,
        description="read only these characters, e.g. 0123456789 (masked before decoding; with one case "
        "only, the model's other case counts for it)",
    ),
]


Solve = Annotated[
    str | None,
    Query(
        max_length=32,
        description="also solve each reading: 'arithmetic' adds its value as `answer` (null with "
        "`answer_error` when it does not parse); default: the service's --solve",
    ),
]


ReadLength = Annotated[
    str | None,
    Query(
        max_length=16,
        description="how many characters a reading has: N, N-M or 'any' (default: the lengths of the "
        "model's training labels, as recorded in it; a best reading of another length gives way to the "
        "best one of this length)",
    ),
]


def _check_reading(
    recognizer: Recognizer, charset: str | None, solve: str | None, length: str | None
) -> None:
    """The request's charset, solver and length checked against the model: a 422 with one line."""
    if solve is not None and solve not in SOLVERS:
        raise ApiError(422, f"unknown solve {solve!r}; choose from: {', '.join(SOLVERS)}")
    try:
        if charset is not None:
            recognizer.constraint(charset)
        if length is not None:
            recognizer.lengths_for(length)
    except CaptchaCrnnError as exc:
        raise ApiError(422, str(exc).replace("--charset", "charset").replace("--length", "length")) from None


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


async def uploads(
    request: Request, *, max_files: int, too_many: ApiError, max_fields: int
) -> list[tuple[str, bytes]]:
    """The request's file fields as (name, bytes). The parser stops at the first file over `max_files`,
    so every count over the limit gets the same `too_many` answer (not Starlette's 400)."""
    try:
        form = await request.form(max_files=max_files, max_fields=max_fields)
    except HTTPException as exc:
        if str(exc.detail).startswith(TOO_MANY_FILES):
            raise too_many from None
        raise ApiError(exc.status_code, str(exc.detail)) from None
    try:
        return [(v.filename or k, await v.read()) for k, v in form.multi_items() if isinstance(v, UploadFile)]
    finally:
        await form.close()


def _summary(served: ServedModel) -> dict[str, Any]:
    model = served.model
    policy = model.policy
    return {
        "name": served.name,
        "charset": model.charset,
        "input": ModelInput(
            height=policy.height,
            min_width=policy.min_width,
            max_width=policy.max_width,
            fixed_width=policy.fixed_width,
            stretch=policy.stretch,
        ),
        "model_file": served.path,
    }


def _model_info(served: ServedModel, limits: ServeLimits, solve: str | None) -> ModelInfo:
    return ModelInfo(
        **_summary(served),
        version=__version__,
        solve=solve,
        reload_error=served.reload_error,
        limits=ModelLimits(
            max_body_bytes=limits.max_body_bytes,
            max_pixels=limits.max_pixels,
            max_batch=limits.max_batch,
            max_batch_pixels=limits.max_batch_pixels,
            max_queue=limits.max_queue,
            request_timeout_s=limits.request_timeout,
        ),
    )


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` workers: each worker process loads the models once and sets its own
    inference threads (`serve` exports the settings as environment variables)."""
    env = os.environ
    path = env[MODEL_ENV]
    default = ServeLimits()
    limits = ServeLimits(
        max_body_bytes=int(env.get("CAPTCHA_CRNN_MAX_BODY", default.max_body_bytes)),
        max_pixels=int(env.get("CAPTCHA_CRNN_MAX_PIXELS", default.max_pixels)),
        max_queue=int(env.get("CAPTCHA_CRNN_MAX_QUEUE", default.max_queue)),
        request_timeout=float(env.get("CAPTCHA_CRNN_REQUEST_TIMEOUT", default.request_timeout)),
    )
    # MODELS counts only when its first model is MODEL: MODEL set alone (by hand, for uvicorn) serves that.
    sources = json.loads(env.get(MODELS_ENV) or "[]")
    if not sources or sources[0][1] != path:
        sources = [(Path(path).stem or "model", path)]
    threads = int(env.get(THREADS_ENV) or 0)

    def load(file: str) -> Recognizer:
        recognizer = Recognizer.load(file)
        if threads:
            limit_threads(recognizer, model_file(file), threads)
        return recognizer

    served = [(name, load(file), str(Path(file))) for name, file in sources]
    reload = env.get(RELOAD_ENV)
    return create_models_app(
        served,
        limits,
        solve=env.get(SOLVE_ENV) or None,
        reload_every=float(reload) if reload else None,
        loader=load,
        folders=json.loads(env.get(FOLDERS_ENV) or "[]"),
    )
