"""The service's routes, on routers that app.py assembles.

The recognize routes are written once (`recognize_routes`) and mounted twice: at /v1 for the first model
and at /v1/models/{name} for each model by name; a dependency (`pick`) is all that differs. The routes
find the served models, limits and default solver on `request.app.state` (a `Service`).
"""

# No `from __future__ import annotations`: FastAPI reads each route's annotations at import, and the
# recognize routes' model dependency is a local name (`Picked`) that a string annotation could not find.
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from captcha_crnn import __version__
from captcha_crnn.arithmetic import SOLVERS
from captcha_crnn.data.images import header_pixels
from captcha_crnn.errors import OptionError
from captcha_crnn.inference.recognizer import Recognizer
from captcha_crnn.serving.batcher import ApiError
from captcha_crnn.serving.limits import ServeLimits
from captcha_crnn.serving.models import ModelSet, ServedModel
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

TOO_MANY_FILES = "Too many files"  # how Starlette's multipart parser words a max_files refusal

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


@dataclass(frozen=True)
class Service:
    """What every route needs: the served models, the limits, and the default solver (--solve)."""

    models: ModelSet
    limits: ServeLimits
    solve: str | None

    @property
    def form_fields(self) -> int:
        return self.limits.max_batch + 1  # non-file form fields allowed (and ignored)


def service(request: Request) -> Service:
    return request.app.state.service


# The model dependencies are coroutines: FastAPI runs a plain function in its thread pool, and the hop
# there and back reorders requests that arrive together (the micro-batcher's order is theirs).
async def default_model(request: Request) -> ServedModel:
    return service(request).models.default


async def named_model(name: str, request: Request) -> ServedModel:
    """The model called `name`; 404 lists the names."""
    return service(request).models.get(name)


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


def recognize_routes(pick: Callable[..., ServedModel], errors: tuple[int, ...], whose: str) -> APIRouter:
    """POST /recognize and /recognize/batch, reading with the model `pick` finds; `whose` ends each
    route's description."""
    router = APIRouter()
    responses = error_responses(*errors)
    Picked = Annotated[ServedModel, Depends(pick)]

    @router.post(
        "/recognize",
        response_model=Recognition,
        response_model_exclude_unset=True,  # answer fields only when solving (--solve or ?solve=)
        responses=responses,
        openapi_extra={"requestBody": IMAGE_BODY},
        description=f"One image, as a multipart file field or as the raw request body; {whose}.",
    )
    async def recognize(
        request: Request,
        served: Picked,
        charset: Charset = None,
        solve: Solve = None,
        length: ReadLength = None,
    ) -> dict[str, Any]:
        _check_reading(served.model, charset, solve, length)
        fields = service(request).form_fields
        if _is_multipart(request):
            one = "send exactly one image file, or the image as the raw request body"
            files = await uploads(request, max_files=1, too_many=ApiError(400, one), max_fields=fields)
            if len(files) != 1:
                raise ApiError(400, one)
            item = files[0]
        else:
            item = ("body", await request.body())
        return (await served.batcher.submit([item], charset, solve, length))[0]

    @router.post(
        "/recognize/batch",
        response_model=list[BatchItem],
        response_model_exclude_unset=True,
        responses=responses,
        openapi_extra={"requestBody": BATCH_BODY},
        description="Several images as multipart file fields; the answers come in the same order. One bad "
        f"image fails the whole request (with that image's error); {whose}.",
    )
    async def recognize_batch(
        request: Request,
        served: Picked,
        charset: Charset = None,
        solve: Solve = None,
        length: ReadLength = None,
    ) -> list[dict[str, Any]]:
        _check_reading(served.model, charset, solve, length)
        limits = service(request).limits
        if not _is_multipart(request):
            raise ApiError(415, "send the images as multipart/form-data file fields")
        too_many = ApiError(413, f"at most {limits.max_batch} images per batch")
        fields = service(request).form_fields
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

    return router


info = APIRouter()


@info.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"model": Health, "description": "the inference loop has stopped, or hangs"}},
)
async def healthz(request: Request) -> Health | JSONResponse:
    """ok while every model's inference loop runs; 503 with the reason once one has stopped, or while a
    pass has run past the request timeout."""
    models = service(request).models
    for served in models:
        if problem := served.batcher.problem or served.batcher.stalled:
            detail = problem if len(models.by_name) == 1 else f"model {served.name}: {problem}"
            return JSONResponse(Health(status="unavailable", detail=detail).model_dump(), status_code=503)
    return Health(status="ok")


@info.get("/v1/model", response_model=ModelInfo)
async def model_info(request: Request, served: Annotated[ServedModel, Depends(default_model)]) -> ModelInfo:
    """The first model."""
    return _model_info(served, service(request))


@info.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    """Every model served, in the order given; `default` is the one the unnamed routes use."""
    models = service(request).models
    return ModelList(
        models=[ModelSummary(**_summary(served)) for served in models], default=models.default.name
    )


@info.get("/v1/models/{name}", response_model=ModelInfo, responses=error_responses(404))
async def named_model_info(
    request: Request, served: Annotated[ServedModel, Depends(named_model)]
) -> ModelInfo:
    return _model_info(served, service(request))


@info.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> str:
    return PAGE


def _check_reading(
    recognizer: Recognizer, charset: str | None, solve: str | None, length: str | None
) -> None:
    """The request's charset, solver and length checked against the model: a 422 with one line."""
    if solve is not None and solve not in SOLVERS:
        raise ApiError(422, f"unknown solve {solve!r}; choose from: {', '.join(SOLVERS)}")
    try:
        recognizer.reading(charset, length)
    except OptionError as exc:
        raise ApiError(422, f"{exc.option} {exc.problem}") from None


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
            crop=policy.crop,
        ),
        "model_file": served.path,
    }


def _model_info(served: ServedModel, svc: Service) -> ModelInfo:
    limits = svc.limits
    return ModelInfo(
        **_summary(served),
        version=__version__,
        solve=svc.solve,
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
