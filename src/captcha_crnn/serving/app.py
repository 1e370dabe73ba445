"""FastAPI app: /v1/recognize, /v1/recognize/batch, /v1/model, /healthz, and a web page at /.

Hostile input is answered, never crashes the worker: bodies over the limit get 413 (before they are read
in full), files that are not images or in another format 415, truncated images and images over the pixel
limit 422, always as JSON `{"detail": message}`. Uploaded bytes stay in memory: nothing is written to disk.
Inference runs in a thread off the event loop, one network call at a time per worker; requests that
arrive while a call runs are batched into the next one (natural micro-batching: no added wait when idle,
one batched forward pass under load).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from captcha_crnn import __version__
from captcha_crnn.data.images import IMAGE_FORMATS
from captcha_crnn.errors import ImageError, UnsupportedImageError
from captcha_crnn.inference.recognizer import Recognizer
from captcha_crnn.serving.page import PAGE

MODEL_ENV = "CAPTCHA_CRNN_MODEL"


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 2 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    max_batch: int = 64  # images in one /batch request
    max_queue_batch: int = 64  # images in one forward pass across concurrent requests


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


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _status_for(exc: ImageError) -> int:
    """415 when it is not an image we read; 422 when it is one but damaged or over the pixel limit."""
    return 415 if isinstance(exc, UnsupportedImageError) else 422


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


@dataclass
class Job:
    items: list[tuple[str, bytes]]
    future: asyncio.Future = field(repr=False)
    started: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """One consumer task: takes every job queued so far (up to `max_images`), runs them through the
    network in one thread call, and answers each job's future with its results or its own error."""

    def __init__(self, recognizer: Recognizer, limits: ServeLimits) -> None:
        self.recognizer, self.limits = recognizer, limits
        self.queue: asyncio.Queue[Job] = asyncio.Queue()

    async def submit(self, items: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        job = Job(items, asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        return await job.future

    async def run(self) -> None:
        while True:
            jobs = [await self.queue.get()]
            size = len(jobs[0].items)
            while not self.queue.empty() and size < self.limits.max_queue_batch:
                jobs.append(self.queue.get_nowait())
                size += len(jobs[-1].items)
            outcomes = await anyio.to_thread.run_sync(self._process, jobs)
            done = time.perf_counter()
            for job, outcome in zip(jobs, outcomes):
                if job.future.done():  # the client went away
                    continue
                if isinstance(outcome, Exception):
                    job.future.set_exception(outcome)
                else:
                    elapsed = round((done - job.started) * 1000, 3)
                    job.future.set_result([{**r, "elapsed_ms": elapsed} for r in outcome])

    def _process(self, jobs: list[Job]) -> list[list[dict[str, Any]] | Exception]:
        """In a worker thread: decode each job's images (a bad one fails only its job), then one forward
        pass for all of them."""
        outcomes: list[list[dict[str, Any]] | Exception] = []
        pixels, owners = [], []
        for index, job in enumerate(jobs):
            try:
                decoded = [
                    self.recognizer.preprocess(data, name, self.limits.max_pixels, IMAGE_FORMATS)
                    for name, data in job.items
                ]
            except ImageError as exc:
                outcomes.append(ApiError(_status_for(exc), str(exc)))
                continue
            outcomes.append([])
            pixels += decoded
            owners += [index] * len(decoded)
        try:
            preds = self.recognizer.predict_pixels(pixels) if pixels else []
        except Exception as exc:  # answer every waiting request rather than leave it hanging
            return [exc] * len(jobs)
        for owner, pred in zip(owners, preds):
            outcomes[owner].append({"text": pred.text, "confidence": round(pred.confidence, 6)})  # type: ignore[union-attr]
        return outcomes


def create_app(recognizer: Recognizer, model_path: str, limits: ServeLimits | None = None) -> FastAPI:
    limits = limits or ServeLimits()
    # Starlette spools uploads over 1 MB to a temporary file; keep every allowed upload in memory.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limits.max_body_bytes + 1)
    batcher = MicroBatcher(recognizer, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app = FastAPI(
        title="captcha-crnn",
        version=__version__,
        description="Reads the text in captcha-style images with a CRNN + CTC model.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    async def run(items: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        return await batcher.submit(items)

    async def uploads(request: Request) -> list[tuple[str, bytes]]:
        form = await request.form(max_files=limits.max_batch + 1, max_fields=limits.max_batch + 1)
        files = [
            (v.filename or k, await v.read()) for k, v in form.multi_items() if isinstance(v, UploadFile)
        ]
        await form.close()
        return files

    @app.post("/v1/recognize", openapi_extra={"requestBody": IMAGE_BODY})
    async def recognize(request: Request) -> dict[str, Any]:
        """One image, as a multipart file field or as the raw request body."""
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            files = await uploads(request)
            if len(files) != 1:
                raise ApiError(400, f"send exactly one image file, got {len(files)}")
            item = files[0]
        else:
            item = ("body", await request.body())
        return (await run([item]))[0]

    @app.post("/v1/recognize/batch", openapi_extra={"requestBody": BATCH_BODY})
    async def recognize_batch(request: Request) -> list[dict[str, Any]]:
        """Several images as multipart file fields; the answers come in the same order."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(415, "send the images as multipart/form-data file fields")
        files = await uploads(request)
        if not files:
            raise ApiError(400, "no image files in the request")
        if len(files) > limits.max_batch:
            raise ApiError(413, f"at most {limits.max_batch} images per batch, got {len(files)}")
        results = await run(files)
        return [{"file": name, **r} for (name, _), r in zip(files, results)]

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model")
    async def model_info() -> dict[str, Any]:
        policy = recognizer.policy
        return {
            "charset": recognizer.charset,
            "input": {
                "height": policy.height,
                "min_width": policy.min_width,
                "max_width": policy.max_width,
                "fixed_width": policy.fixed_width,
            },
            "model_file": model_path,
            "version": __version__,
            "limits": {
                "max_body_bytes": limits.max_body_bytes,
                "max_pixels": limits.max_pixels,
                "max_batch": limits.max_batch,
            },
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE

    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` workers: each worker process loads the model once."""
    path = os.environ[MODEL_ENV]
    limits = ServeLimits(
        max_body_bytes=int(os.environ.get("CAPTCHA_CRNN_MAX_BODY", ServeLimits.max_body_bytes)),
        max_pixels=int(os.environ.get("CAPTCHA_CRNN_MAX_PIXELS", ServeLimits.max_pixels)),
    )
    return create_app(Recognizer.load(path), str(Path(path)), limits)
