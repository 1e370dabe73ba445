"""FastAPI app: /v1/recognize, /v1/recognize/batch, /v1/model, /healthz, and a web page at /.

Hostile input is answered, never crashes the worker: bodies over the limit get 413 (before they are read
in full), and so do batches over the image limit; files that are not images or in another format 415,
truncated images and images over the pixel limit 422, always as JSON `{"detail": message}`. Uploaded
bytes stay in memory: nothing is written to disk. Inference runs in a thread off the event loop through
the micro-batcher (batcher.py), which also answers 503 when its queue is full or it has stopped, 504 when
a request waits too long and 500 when the model fails, so that no request hangs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from captcha_crnn import __version__
from captcha_crnn.errors import LabelError
from captcha_crnn.inference.recognizer import Recognizer
from captcha_crnn.serving.batcher import ApiError, MicroBatcher
from captcha_crnn.serving.limits import ServeLimits
from captcha_crnn.serving.page import PAGE
from captcha_crnn.serving.schemas import (
    BatchItem,
    Health,
    ModelInfo,
    ModelInput,
    ModelLimits,
    Recognition,
    error_responses,
)
from captcha_crnn.serving.threads import limit_threads

__all__ = ["ServeLimits", "app_from_env", "create_app"]

MODEL_ENV = "CAPTCHA_CRNN_MODEL"
THREADS_ENV = "CAPTCHA_CRNN_THREADS"
TOO_MANY_FILES = "Too many files"  # how Starlette's multipart parser words a max_files refusal


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for a body over the limit: from Content-Length at once, or while a chunked body streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
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
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body is larger than {self.max_bytes} bytes"}, status_code=413
        )
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


def create_app(recognizer: Recognizer, model_path: str, limits: ServeLimits | None = None) -> FastAPI:
    limits = limits or ServeLimits()
    # Starlette spools uploads over 1 MB to a temporary file; keep every allowed upload in memory.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limits.max_body_bytes + 1)
    batcher = MicroBatcher(recognizer, limits)
    fields = limits.max_batch + 1  # non-file form fields allowed (and ignored)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="captcha-crnn",
        version=__version__,
        description="Reads the text in captcha-style images with a CRNN + CTC model. Every error is JSON "
        '`{"detail": "one line"}`.',
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    @app.post(
        "/v1/recognize",
        response_model=Recognition,
        responses=error_responses(400, 413, 415, 422, 500, 503, 504),
        openapi_extra={"requestBody": IMAGE_BODY},
    )
    async def recognize(request: Request, charset: Charset = None) -> dict[str, Any]:
        """One image, as a multipart file field or as the raw request body."""
        _check_charset(recognizer, charset)
        if _is_multipart(request):
            one = "send exactly one image file, or the image as the raw request body"
            files = await uploads(request, max_files=1, too_many=ApiError(400, one), max_fields=fields)
            if len(files) != 1:
                raise ApiError(400, one)
            item = files[0]
        else:
            item = ("body", await request.body())
        return (await batcher.submit([item], charset))[0]

    @app.post(
        "/v1/recognize/batch",
        response_model=list[BatchItem],
        responses=error_responses(400, 413, 415, 422, 500, 503, 504),
        openapi_extra={"requestBody": BATCH_BODY},
    )
    async def recognize_batch(request: Request, charset: Charset = None) -> list[dict[str, Any]]:
        """Several images as multipart file fields; the answers come in the same order. One bad image
        fails the whole request (with that image's error)."""
        _check_charset(recognizer, charset)
        if not _is_multipart(request):
            raise ApiError(415, "send the images as multipart/form-data file fields")
        too_many = ApiError(413, f"at most {limits.max_batch} images per batch")
        files = await uploads(request, max_files=limits.max_batch, too_many=too_many, max_fields=fields)
        if not files:
            raise ApiError(400, "no image files in the request")
        results = await batcher.submit(files, charset)
        return [{"file": name, **r} for (name, _), r in zip(files, results)]

    @app.get(
        "/healthz",
        response_model=Health,
        response_model_exclude_none=True,
        responses={503: {"model": Health, "description": "the inference loop has stopped"}},
    )
    async def healthz() -> Health | JSONResponse:
        """ok while the inference loop runs; 503 with the reason once it has stopped."""
        if problem := batcher.problem:
            return JSONResponse(Health(status="unavailable", detail=problem).model_dump(), status_code=503)
        return Health(status="ok")

    @app.get("/v1/model", response_model=ModelInfo)
    async def model_info() -> ModelInfo:
        return _model_info(recognizer, model_path, limits)

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


def _check_charset(recognizer: Recognizer, charset: str | None) -> None:
    if charset is not None:
        try:
            recognizer.constraint(charset)
        except LabelError as exc:
            raise ApiError(422, str(exc).replace("--charset", "charset")) from None


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


def _model_info(recognizer: Recognizer, model_path: str, limits: ServeLimits) -> ModelInfo:
    policy = recognizer.policy
    return ModelInfo(
        charset=recognizer.charset,
        input=ModelInput(
            height=policy.height,
            min_width=policy.min_width,
            max_width=policy.max_width,
            fixed_width=policy.fixed_width,
        ),
        model_file=model_path,
        version=__version__,
        limits=ModelLimits(
            max_body_bytes=limits.max_body_bytes,
            max_pixels=limits.max_pixels,
            max_batch=limits.max_batch,
            max_queue=limits.max_queue,
            request_timeout_s=limits.request_timeout,
        ),
    )


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` workers: each worker process loads the model once and sets its own
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
    recognizer = Recognizer.load(path)
    if threads := env.get(THREADS_ENV):
        limit_threads(recognizer, path, int(threads))
    return create_app(recognizer, str(Path(path)), limits)
