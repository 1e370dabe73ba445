"""ASGI middleware: request bodies within a size and a time limit (uvicorn has neither); media types in
lower case, as every parser version reads them."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


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


class MediaTypeMiddleware:
    """Lower-cases the media type of Content-Type before any parser sees it. Media types are
    case-insensitive (RFC 9110, 8.3.1), but older Starlette and python-multipart (this package's floors
    among them) compare `multipart/form-data` as written: `Multipart/Form-Data` was not read as a form.
    Its parameters are kept as sent: a boundary is case-sensitive."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [_lower_media_type(name, value) for name, value in scope["headers"]]
            if headers != scope["headers"]:  # a new scope only for a request that needs one
                scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def _lower_media_type(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    if name != b"content-type":  # ASGI servers hand header names in lower case
        return name, value
    media_type, semicolon, parameters = value.partition(b";")
    return name, media_type.lower() + semicolon + parameters


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
