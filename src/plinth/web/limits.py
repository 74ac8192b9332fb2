"""A request body limit: a larger body is answered 413 with a JSON body.

`BodySizeLimit` is a pure ASGI middleware (``app.add_middleware(BodySizeLimit)``).
A ``Content-Length`` over the limit is refused before any byte of the body is
read; a body without one (chunked, streamed) is counted as it arrives, and
refused at the first byte over the limit. Whatever the app answers once its
body read failed (FastAPI turns a failed read into a 400, Starlette an
unhandled error into a 500), the client gets the 413.

The limit is ``HTTP_MAX_BODY_BYTES`` (default 4 MiB), or ``max_bytes=``; an
upload endpoint gets its own by media type, e.g.
``media_types={"application/pdf": 50 * 1024 * 1024}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from starlette.exceptions import HTTPException

from plinth.settings import PlinthSettings

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodySizeLimit", "HttpSettings", "RequestTooLarge"]

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


class HttpSettings(PlinthSettings):
    """HTTP limits, read from the environment (``HTTP_`` prefix) and `.env`."""

    model_config = SettingsConfigDict(env_prefix="HTTP_")

    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1)
    """``HTTP_MAX_BODY_BYTES``: the largest request body accepted, in bytes."""


class RequestTooLarge(HTTPException):
    """Raised by the body read of a request over the limit (answered 413)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes")


class BodySizeLimit:
    """Answer 413 to a request whose body exceeds `max_bytes`.

    ``max_bytes`` defaults to ``HTTP_MAX_BODY_BYTES`` (4 MiB when unset), read
    when the middleware is built; a bad value is one `ConfigurationError` line.
    ``media_types`` maps a ``Content-Type`` (without parameters) to its own
    limit, for an endpoint that takes uploads.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int | None = None,
        *,
        media_types: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        """The wrapped ASGI app."""
        self.max_bytes = max_bytes if max_bytes is not None else HttpSettings.load().max_body_bytes
        """The limit for every media type not in `media_types`, in bytes."""
        self.media_types = {k.lower(): v for k, v in (media_types or {}).items()}
        """Limits per media type (lower case, without parameters), in bytes."""
        if min([self.max_bytes, *self.media_types.values()]) < 1:
            raise ValueError("a body limit must be at least 1 byte")

    def limit(self, scope: Scope) -> int:
        """The limit that applies to the request of `scope`."""
        if self.media_types:
            media_type = _header(scope, b"content-type") or b""
            key = media_type.split(b";")[0].strip().decode("latin-1").lower()
            return self.media_types.get(key, self.max_bytes)
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > max_bytes:
            await _refuse(send, max_bytes)
            return
        received = 0
        exceeded = started = refused = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise RequestTooLarge(max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    exceeded = True
                    raise RequestTooLarge(max_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, refused
            if refused:
                return  # the app's answer to the failed read: replaced by the 413
            if message["type"] == "http.response.start":
                if exceeded:
                    refused = started = True
                    await _refuse(send, max_bytes)
                    return
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except RequestTooLarge:
            if not started:
                await _refuse(send, max_bytes)
            # else: a response already went out while the body was still arriving;
            # the server ends the connection. Not an error of the app's to log.


async def _refuse(send: Send, max_bytes: int) -> None:
    body = json.dumps({"detail": f"request body larger than {max_bytes} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # No "connection: close": the server then discards the rest of the
                # body (never buffered) while the client, which sends its whole
                # body before it reads, finishes; closing at once would reset the
                # connection under it, and it would never see the 413.
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the server refuses a malformed length itself
