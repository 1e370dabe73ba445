"""FastAPI app: /v1/recognize, /v1/recognize/batch, /v1/model, /healthz, and a web page at /; with
several models, /v1/models lists them and /v1/models/{name}/... serves each (the unnamed routes serve
the first). Each model has its own micro-batcher; with `reload_every` changed model files are swapped in
while serving (models.py). This module assembles the parts: routes.py (the routes, on routers),
middleware.py (body limits, media types), settings.py (what `serve` hands each worker).

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
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.formparsers import MultiPartParser

from captcha_crnn import __version__
from captcha_crnn.arithmetic import check_solver
from captcha_crnn.inference.recognizer import Recognizer
from captcha_crnn.serving import routes
from captcha_crnn.serving.batcher import ApiError, MicroBatcher, Model
from captcha_crnn.serving.limits import ServeLimits
from captcha_crnn.serving.middleware import BodyLimitMiddleware, MediaTypeMiddleware
from captcha_crnn.serving.models import ModelSet, ServedModel, model_file, signature
from captcha_crnn.serving.settings import ServeSettings
from captcha_crnn.serving.threads import limit_threads
from captcha_crnn.web_errors import add_json_error_handlers, detail_response

__all__ = ["ServeLimits", "app_from_env", "create_app", "create_models_app"]

ERRORS = (400, 408, 413, 415, 422, 500, 503, 504)  # what a recognize route may answer besides 200


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
    app.state.service = routes.Service(registry, limits, solve)
    app.state.batcher = registry.default.batcher  # the first model's
    app.state.models = registry
    app.add_middleware(MediaTypeMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes, timeout=limits.request_timeout)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return detail_response(exc.status, exc.message, exc.headers)

    add_json_error_handlers(app)

    app.include_router(routes.info)
    app.include_router(routes.recognize_routes(routes.default_model, ERRORS, "the first model"), prefix="/v1")
    app.include_router(
        routes.recognize_routes(
            routes.named_model, (*ERRORS, 404), "the model called `name` (404 lists the names)"
        ),
        prefix="/v1/models/{name}",
    )
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` workers: each worker process loads the models once and sets its own
    inference threads (`serve` hands over its settings as environment variables: settings.py)."""
    settings = ServeSettings.from_env(os.environ)

    def load(file: str) -> Recognizer:
        recognizer = Recognizer.load(file)
        if settings.threads:
            limit_threads(recognizer, model_file(file), settings.threads)
        return recognizer

    served = [(name, load(file), str(Path(file))) for name, file in settings.models]
    return create_models_app(
        served,
        settings.limits,
        solve=settings.solve,
        reload_every=settings.reload_every,
        loader=load,
        folders=settings.folders,
    )
