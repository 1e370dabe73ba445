"""Every error of both web apps (the service and the labelling page) as JSON `{"detail": "one line"}`:
FastAPI's own answers to a malformed request are a list of problems that echoes the input back, and
that echo fails (a 500 and a traceback) when the input holds a lone surrogate such as "\\ud800"."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from captcha_crnn.errors import one_line


def detail_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """`{"detail": message}`; characters JSON cannot carry as UTF-8 (lone surrogates) become '?'."""
    safe = message.encode("utf-8", "replace").decode("utf-8")
    return JSONResponse({"detail": safe}, status_code=status, headers=headers)


def validation_detail(exc: RequestValidationError) -> str:
    """The first of FastAPI's problems, as one line naming the field."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = tuple(first.get("loc", ()))
    if loc == ("body",) and first.get("type") in ("dict_type", "model_attributes_type"):
        return "body: expected a JSON object, sent as Content-Type: application/json"
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return f"body: not valid JSON ({one_line(reason, 120)})" if reason else "body: not valid JSON"
    where = ".".join(str(part) for part in loc[1:]) or (str(loc[0]) if loc else "request")
    return f"{where}: {one_line(first.get('msg', 'invalid'), 200)}"


def add_json_error_handlers(app: FastAPI) -> None:
    """Malformed requests (422) and anything unforeseen (500) answered as one JSON line; the app's own
    errors answer so already."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return detail_response(422, validation_detail(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return detail_response(500, f"internal error: {type(exc).__name__}")
