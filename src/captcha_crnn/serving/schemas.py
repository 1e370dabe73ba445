"""Response bodies of the HTTP API, as pydantic models so that /docs (OpenAPI) shows what each route
returns. Field names are the API: the web page (page.py) and clients read them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Recognition(BaseModel):
    text: str = Field(description="the text read; empty when nothing was read")
    confidence: float = Field(ge=0, le=1, description="probability of the best CTC path")
    elapsed_ms: float = Field(description="time from the request's arrival at the model queue to its answer")
    answer: int | None = Field(
        default=None,
        description="only when solving (serve --solve, or ?solve=arithmetic): the value of the expression "
        "read (12×4= -> 48), "
        "or null when it does not parse",
    )
    answer_error: str | None = Field(default=None, description="why `answer` is null (only then present)")


class BatchItem(Recognition):
    file: str = Field(description="the uploaded file's name (or its form field name when it has none)")


class ModelInput(BaseModel):
    height: int
    min_width: int
    max_width: int
    fixed_width: int | None = Field(description="the width every image is resized to, or null if it varies")
    stretch: float = Field(description="width / the width at the image's own aspect ratio, before clamping")
    crop: bool = Field(description="whether each image is first cut to its text (where the text is small)")


class ModelLimits(BaseModel):
    max_body_bytes: int
    max_pixels: int
    max_batch: int = Field(description="most images in one /v1/recognize/batch request")
    max_batch_pixels: int = Field(description="most pixels of one batch request's images together")
    max_queue: int = Field(description="most images waiting for the model before requests get 503")
    request_timeout_s: float = Field(description="a request still waiting after this long gets 504")


class ModelSummary(BaseModel):
    name: str = Field(description="the name in /v1/models/{name}/recognize")
    charset: str
    input: ModelInput
    model_file: str


class ModelList(BaseModel):
    models: list[ModelSummary] = Field(description="every model served, in the order given")
    default: str = Field(description="the model that /v1/recognize and /v1/model use")


class ModelInfo(ModelSummary):
    version: str
    solve: str | None = Field(default=None, description="what readings are solved as (--solve), if anything")
    reload_error: str | None = Field(
        default=None, description="why the model file's latest change is not being served (with --reload)"
    )
    limits: ModelLimits


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    detail: str | None = Field(default=None, description="why the service is unavailable")


class Error(BaseModel):
    detail: str = Field(description="one line saying what went wrong")


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` entries for routes that answer these statuses with an `Error` body."""
    return {status: {"model": Error, "description": ERROR_MEANINGS[status]} for status in statuses}


ERROR_MEANINGS = {
    400: "malformed request (wrong number of files, bad multipart data)",
    404: "no model of that name (the message lists the names)",
    408: "the request body did not all arrive within the request timeout",
    413: "request body, or number of images, over the limit",
    415: "not an image, or not a format the service reads",
    422: "a damaged image, one over the pixel limit, or a bad query parameter (charset, solve)",
    500: "internal error while reading the images or running the model",
    503: "queue full (retry after the Retry-After header's seconds) or the inference loop has stopped",
    504: "no answer within the request timeout",
}
