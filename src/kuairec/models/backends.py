"""Backends that hold a session open (Spark's JVM): each registers how to close it.

A model whose backend starts a long-lived session calls :func:`on_close` with the
function that stops it; whoever runs the models (``kuairec run``, a test, a notebook)
calls :func:`close_all` when it is done. Nothing here names a backend.
"""

from __future__ import annotations

from collections.abc import Callable

_CLOSERS: dict[str, Callable[[], None]] = {}


def on_close(key: str, close: Callable[[], None]) -> None:
    """Register ``close`` under ``key`` (a second registration under a key replaces it)."""
    _CLOSERS[key] = close


def close_all() -> None:
    """Close every registered backend, newest first; each is closed once."""
    while _CLOSERS:
        _, close = _CLOSERS.popitem()
        close()
