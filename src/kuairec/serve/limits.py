"""What one request may cost the server, and the middleware that holds requests to it.

A server facing a network must bound what a client can make it hold: a request body
(a 200 MB JSON body once took a worker to 610 MB), a batch's answer (1,000 users times
k=1,000 is a million list entries, about 190 MB of JSON at scale 1.0), slow clients that
hold sockets open (:mod:`kuairec.serve.protocol` times them out) and connections.
:class:`ServeLimits` holds the bounds (``kuairec serve`` options, docs/serving.md);
:class:`LimitsMiddleware` enforces the body size and answers ``HEAD`` wherever ``GET``
is answered (HEAD-based health checks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MIB = 1 << 20


@dataclass(frozen=True)
class ServeLimits:
    """Per-worker bounds of ``kuairec serve`` (defaults: docs/serving.md#limits)."""

    #: a request body (a 10,000-video history with 200-character text ids is ~2.3 MB)
    max_body_bytes: int = 4 * MIB
    #: a batch's users times k: the list entries one answer may hold (~19 MB of JSON)
    max_batch_work: int = 100_000
    #: batch requests scored at once per worker; the others wait without a thread
    batch_concurrency: int = 2
    #: seconds from a request's first byte to the end of its headers
    header_timeout: float = 10.0
    #: seconds from the end of the headers to the end of the body
    body_timeout: float = 30.0
    #: seconds an idle connection (before its first request, or between requests) stays
    keep_alive: float = 5.0
    #: bytes of request line and headers
    max_header_bytes: int = 64 * 1024
    #: connections (and requests in progress) per worker; beyond it uvicorn answers 503
    limit_concurrency: int = 1024

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_batch_work", "batch_concurrency",
                     "max_header_bytes", "limit_concurrency"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"ServeLimits.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("header_timeout", "body_timeout", "keep_alive"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServeLimits.{name} must be > 0, got {getattr(self, name)}")


def too_large_message(limit: int, got: str) -> str:
    return f"request body too large: {got}, the limit is {limit:,} bytes (--max-body-bytes)"


def _body_too_large(limit: int) -> Exception:
    """A body grew past the limit while it was read (no Content-Length, or a false one):
    an HTTPException, which FastAPI's body parsing passes on to the app's JSON handler."""
    from starlette.exceptions import HTTPException

    return HTTPException(413, too_large_message(limit, "more"), headers={"connection": "close"})


class LimitsMiddleware:
    """Pure ASGI middleware: ``HEAD`` is served as ``GET`` without the body, and a body
    over ``max_body_bytes`` is a JSON 413, refused from its ``Content-Length`` before a
    byte of it is read, or as soon as a chunked body passes the limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
            send = _without_body(send)
        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            await _too_large(send, self.max_body_bytes, f"{length:,} bytes")
            return
        await self.app(scope, _counted(receive, self.max_body_bytes), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _counted(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _body_too_large(limit)
        return message

    return counted


def _without_body(send: Send) -> Send:
    async def head_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head_send


async def _too_large(send: Send, limit: int, got: str) -> None:
    import orjson

    body = orjson.dumps({"detail": too_large_message(limit, got)})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
