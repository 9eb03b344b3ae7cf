"""Micro-batching: the requests that arrive together are scored in one model call.

A load generator (or a page of users) sends requests in bursts: under ``hey -c 64`` all
64 connections fire within the same millisecond. Scoring them one at a time pays the
model's per-call overhead (argument checks, one small product, one top-k) 64 times;
scoring them as one batch pays it once: one matrix product for all the rows, one
``top_k`` over them (measured at scale 1.0: ALS 306 us per user alone against 86 us in
a batch of 32; item-kNN 975 against 459).

:class:`MicroBatcher` adds no waiting. The first request of an event-loop iteration
schedules a flush with ``loop.call_soon``; every request the loop has already read by
then joins it (the handlers run up to their ``await`` without yielding), and the flush
groups them by ``key`` (model, k, ...: what one model call can share) and calls
``run(key, payloads)`` once per group of at most ``max_batch``. A request alone is
flushed on the next iteration, so an idle server answers as fast as without batching.

The batcher belongs to one event loop (one server worker); it holds no loop between
flushes, so a forked worker starts with an empty one. When a group call fails, each of
its requests is retried alone, so the one that caused it gets the error and the others
their answers; a request whose client went away (a cancelled future) is skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from typing import Any

Run = Callable[[Any, Sequence[Any]], Sequence[Any]]


class MicroBatcher:
    """Coalesce concurrent ``submit(key, payload)`` calls into ``run(key, payloads)``."""

    def __init__(self, run: Run, max_batch: int = 256) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run = run
        self.max_batch = max_batch
        self._pending: dict[Hashable, list[tuple[Any, asyncio.Future]]] = {}
        self._scheduled = False
        self.calls = 0  # group calls made (for tests and the benchmark)
        self.requests = 0  # requests answered through them

    async def submit(self, key: Hashable, payload: Any) -> Any:
        """``run(key, [..., payload, ...])``'s answer for ``payload``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.setdefault(key, []).append((payload, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for key, entries in pending.items():
            live = [(p, f) for p, f in entries if not f.done()]
            for start in range(0, len(live), self.max_batch):
                self._call(key, live[start : start + self.max_batch])

    def _call(self, key: Hashable, entries: list[tuple[Any, asyncio.Future]]) -> None:
        self.calls += 1
        self.requests += len(entries)
        try:
            results = self._run(key, [p for p, _ in entries])
            if len(results) != len(entries):
                raise RuntimeError(
                    f"batched call returned {len(results)} answer(s) for {len(entries)} request(s)"
                )
        except Exception as exc:  # noqa: BLE001 - handed to the request(s) it belongs to
            if len(entries) == 1:
                if not entries[0][1].done():
                    entries[0][1].set_exception(exc)
                return
            for entry in entries:  # one at a time: a bad request must not fail its batch
                self._call(key, [entry])
            return
        for (_, future), result in zip(entries, results, strict=True):
            if not future.done():
                future.set_result(result)
