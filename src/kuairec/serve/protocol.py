"""uvicorn's HTTP protocol with the limits a server facing a network needs.

uvicorn (0.55, httptools) times out only idle keep-alive connections, and only after a
first response: a client that opens a socket and sends nothing, or half a request line,
or headers one byte at a time, or a body that never ends, holds the socket (and a file
descriptor) for as long as it likes; 21 such clients held 75 s all stayed open, and with
a low descriptor limit they starved ``/health``. Its request line and headers are
unbounded in size, and its protocol-level errors are plain text.

:func:`protocol_class` returns uvicorn's ``HttpToolsProtocol`` with, per connection:

- an idle timeout (``keep_alive``) from the moment it opens, not only between requests;
- a header timeout (``header_timeout``): from a request's first byte to the end of its
  headers; then a body timeout (``body_timeout``) to the end of its body. Past either the
  connection is closed, with a JSON 408 when no response has started;
- at most ``max_header_bytes`` of request line and headers: a JSON 431, then close;
- at most ``limit_concurrency`` connections: a new connection beyond it closes the
  oldest one that holds no request in progress (idle, or still sending its request), so
  that clients that hold sockets cannot starve the others (nor exhaust the descriptors:
  ``kuairec serve`` caps the limit below the open-file limit); when every connection is
  busy the new one gets a 503;
- JSON bodies (``{"detail": ...}``, the API's error shape) for a malformed request (400)
  and for the limits (408, 431, 503).
"""

from __future__ import annotations

from typing import Any

from kuairec.serve.limits import ServeLimits

REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def error_bytes(status: int, detail: str) -> bytes:
    """A complete HTTP/1.1 error response with the API's JSON body; the connection closes."""
    import orjson

    body = orjson.dumps({"detail": detail})
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % (status, REASONS[status], len(body))
    )
    return head + body


def protocol_class(limits: ServeLimits) -> type | str:
    """uvicorn's httptools protocol bound by ``limits`` (``"auto"``, uvicorn's own choice,
    where httptools is not installed: then only uvicorn's keep-alive timeout applies)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is in the serve extra
        return "auto"

    class LimitedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc, valid-type]
        """HttpToolsProtocol with idle, header and body timeouts, a header size limit and
        JSON protocol errors (see the module docstring)."""

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._timer: Any = None
            self._header_bytes = 0
            self._refused = False
            self._busy = False  # a request in progress (headers read, response not done)
            self._partial = False  # a request begun whose headers have not all arrived
            self._since = self.loop.time()
            # idle from the start; uvicorn cancels it when data arrives
            self.timeout_keep_alive_task = self.loop.call_later(
                limits.keep_alive, self.timeout_keep_alive_handler
            )
            if len(self.connections) > limits.limit_concurrency:
                self._make_room()

        def _make_room(self) -> None:
            """At the connection limit: close the oldest connection without a request in
            progress; if every one is busy, refuse this one."""
            waiting = [
                c for c in self.connections if c is not self and not getattr(c, "_busy", True)
            ]
            if not waiting:
                self._refuse(
                    503,
                    f"the server holds {limits.limit_concurrency:,} connections "
                    "with requests in progress; try again shortly",
                )
                return
            oldest = min(waiting, key=lambda c: c._since)
            oldest._refuse(
                503,
                "connection closed to make room for a new one (the server is "
                "at its connection limit)",
                respond=oldest._partial,  # never an unasked-for response on an idle one
            )

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            super().connection_lost(exc)

        # -- timers
        def _arm(self, seconds: float, what: str) -> None:
            self._cancel()
            self._timer = self.loop.call_later(seconds, self._timed_out, what, seconds)

        def _cancel(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _timed_out(self, what: str, seconds: float) -> None:
            self._timer = None
            detail = f"request timeout: the {what} took more than {seconds:g} s"
            cycle = self.cycle
            started = cycle is not None and getattr(cycle, "response_started", False)
            if cycle is not None:  # the app's receive() sees a disconnect; its sends are dropped
                cycle.disconnected = True
                cycle.message_event.set()
            self._refuse(408, detail, respond=not started)

        def _refuse(self, status: int, detail: str, respond: bool = True) -> None:
            self._refused = True
            self._cancel()
            if not self.transport.is_closing():
                if respond:
                    self.transport.write(error_bytes(status, detail))
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            idle = self.cycle is None or self.cycle.response_complete
            if self._timer is None and idle:  # bytes before a request begins (CRLFs ...)
                self._arm(limits.header_timeout, "request line and headers")
            super().data_received(data)

        # -- parser callbacks
        def on_message_begin(self) -> None:
            if self._refused:
                return
            super().on_message_begin()
            self._partial = True
            self._header_bytes = 0
            self._arm(limits.header_timeout, "request line and headers")

        def _count(self, n: int) -> bool:
            self._header_bytes += n
            if self._header_bytes > limits.max_header_bytes:
                self._refuse(
                    431, f"request line and headers over {limits.max_header_bytes:,} bytes"
                )
            return not self._refused

        def on_url(self, url: bytes) -> None:
            if self._count(len(url)):
                super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._count(len(name) + len(value) + 4):
                super().on_header(name, value)

        def on_headers_complete(self) -> None:
            if self._refused:
                return
            n = limits.limit_concurrency
            if len(self.tasks) >= n:
                self._refuse(
                    503, f"the server holds {n:,} requests in progress already; try again shortly"
                )
                return
            self._busy, self._partial = True, False
            self._arm(limits.body_timeout, "request body")
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            self._cancel()
            if not self._refused:
                super().on_message_complete()

        def on_response_complete(self) -> None:
            self._busy = False
            self._since = self.loop.time()
            super().on_response_complete()

        def send_400_response(self, msg: str) -> None:
            self._refuse(
                400,
                "malformed HTTP request: expected a request line such as "
                "'GET /health HTTP/1.1', then headers, then an empty line",
            )

    return LimitedHttpToolsProtocol
