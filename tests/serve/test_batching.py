"""MicroBatcher: requests that arrive together share one call; nothing else changes."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from kuairec.serve.batching import MicroBatcher


class Recorder:
    """A group function that records its calls and answers each payload with f(payload);
    a call fails when its key is in ``fail_keys`` or it holds a negative payload."""

    def __init__(self, fail_keys: tuple = ()) -> None:
        self.calls: list[tuple] = []
        self.fail_keys = fail_keys

    def __call__(self, key, payloads):
        self.calls.append((key, list(payloads)))
        if key in self.fail_keys:
            raise ValueError(f"group {key} failed")
        if any(p < 0 for p in payloads):
            raise ValueError("negative payload")
        return [(key, p * 10) for p in payloads]


def test_requests_of_one_iteration_share_one_call_per_key() -> None:
    run = Recorder()
    batcher = MicroBatcher(run)

    async def main():
        jobs = [batcher.submit("a", 1), batcher.submit("b", 2), batcher.submit("a", 3)]
        return await asyncio.gather(*jobs)

    assert asyncio.run(main()) == [("a", 10), ("b", 20), ("a", 30)]
    assert run.calls == [("a", [1, 3]), ("b", [2])]  # one call per key, arrival order
    assert (batcher.calls, batcher.requests) == (2, 3)


def test_a_lone_request_is_answered_on_the_next_iteration() -> None:
    run = Recorder()
    batcher = MicroBatcher(run)

    async def main():
        first = await batcher.submit("a", 1)
        second = await batcher.submit("a", 2)  # a later iteration: its own call
        return first, second

    assert asyncio.run(asyncio.wait_for(main(), timeout=5)) == (("a", 10), ("a", 20))
    assert run.calls == [("a", [1]), ("a", [2])]


def test_a_failing_group_fails_only_its_own_requests() -> None:
    batcher = MicroBatcher(Recorder(fail_keys=("bad",)))

    async def main():
        jobs = [batcher.submit("bad", 1), batcher.submit("ok", 2), batcher.submit("bad", 3)]
        return await asyncio.gather(*jobs, return_exceptions=True)

    bad1, ok, bad3 = asyncio.run(main())
    assert ok == ("ok", 20)
    assert isinstance(bad1, ValueError) and isinstance(bad3, ValueError)
    assert "group bad failed" in str(bad1)


def test_a_bad_request_fails_alone_and_its_batch_is_answered() -> None:
    run = Recorder()
    batcher = MicroBatcher(run)

    async def main():
        jobs = [batcher.submit("a", 1), batcher.submit("a", -2), batcher.submit("a", 3)]
        return await asyncio.gather(*jobs, return_exceptions=True)

    one, bad, three = asyncio.run(main())
    assert (one, three) == (("a", 10), ("a", 30))
    assert isinstance(bad, ValueError) and "negative" in str(bad)
    assert run.calls == [("a", [1, -2, 3]), ("a", [1]), ("a", [-2]), ("a", [3])]


def test_groups_are_cut_at_max_batch() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=2)

    async def main():
        return await asyncio.gather(*(batcher.submit("a", i) for i in range(5)))

    assert asyncio.run(main()) == [("a", i * 10) for i in range(5)]
    assert [p for _, p in run.calls] == [[0, 1], [2, 3], [4]]


def test_a_wrong_number_of_answers_fails_the_group_instead_of_misrouting() -> None:
    batcher = MicroBatcher(lambda key, payloads: payloads[:-1])

    async def main():
        return await asyncio.gather(
            batcher.submit("a", 1), batcher.submit("a", 2), return_exceptions=True
        )

    results = asyncio.run(main())  # retried alone, each answer is missing again
    assert all(isinstance(r, RuntimeError) and "for 1 request(s)" in str(r) for r in results)


def test_a_cancelled_request_is_left_out_of_the_call() -> None:
    run = Recorder()
    batcher = MicroBatcher(run)

    async def main():
        gone = asyncio.ensure_future(batcher.submit("a", 1))
        kept = asyncio.ensure_future(batcher.submit("a", 2))
        await asyncio.sleep(0)  # both submitted; the flush is scheduled, not yet run
        gone.cancel()
        return await kept

    assert asyncio.run(main()) == ("a", 20)
    assert run.calls == [("a", [2])]


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(Recorder(), max_batch=0)


# ---------------------------------------------------------------------- through the app
def test_a_burst_of_requests_is_batched_and_answered_as_single_requests(serve_state) -> None:
    """Concurrent GETs and POSTs on one event loop: fewer model calls than requests, and
    each answer is the one that request gets alone."""
    import httpx

    from kuairec.serve.app import create_app

    users = serve_state.train.users.raw[:12].tolist()
    videos = serve_state.train.items.raw[:30].tolist()
    histories = [
        {"history": [{"video_id": v, "watch_ratio": 1.0 + i / 10} for v in videos[i : i + 8]]}
        for i in range(8)
    ]

    async def ask(app, concurrent: bool):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            jobs = [c.get(f"/users/{u}/recommendations", params={"model": "als"}) for u in users]
            jobs += [c.post("/recommendations", json={**h, "model": "ease"}) for h in histories]
            if concurrent:
                answers = await asyncio.gather(*jobs)
            else:
                answers = [await j for j in jobs]
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        return [r.json() for r in answers]

    burst_app, single_app = create_app(serve_state), create_app(serve_state)
    burst = asyncio.run(ask(burst_app, concurrent=True))
    single = asyncio.run(ask(single_app, concurrent=False))
    # a batch is one matrix product where a single request is a vector product: the
    # same lists, scores equal up to float32 rounding
    for b, s in zip(burst, single, strict=True):
        assert [r["video_id"] for r in b["items"]] == [r["video_id"] for r in s["items"]]
        assert [r["score"] for r in b["items"]] == pytest.approx(
            [r["score"] for r in s["items"]], rel=1e-5, abs=1e-6
        )
        assert {**b, "items": None} == {**s, "items": None}
    n_get, n_post = len(users), len(histories)
    users_b, hist_b = burst_app.state.batchers["users"], burst_app.state.batchers["histories"]
    assert (users_b.requests, hist_b.requests) == (n_get, n_post)
    assert users_b.calls < n_get and hist_b.calls < n_post  # coalesced
    assert single_app.state.batchers["users"].calls == n_get  # one at a time: one each


def test_history_rows_average_repeats_and_list_unknown_videos_per_row(serve_state) -> None:
    from kuairec.serve.scoring import history_rows

    raw = serve_state.train.items.raw
    a, b, c = (int(v) for v in raw[[5, 2, 9]])
    unknown1, unknown2 = int(raw.max()) + 1, int(raw.max()) + 7
    histories = [
        [(a, 1.0), (unknown2, 2.0), (b, 0.5), (a, 2.0), (unknown1, 1.0), (unknown2, 3.0)],
        [],
        [(c, 4.0), (unknown1, 0.0)],
    ]
    x, unknown, used = history_rows(serve_state, histories)
    assert x.shape == (3, serve_state.n_items)
    dense = x.toarray()
    want = np.zeros_like(dense)
    want[0, 5], want[0, 2], want[2, 9] = 1.5, 0.5, 4.0  # a's two ratios averaged
    np.testing.assert_allclose(dense, want)
    assert x.has_sorted_indices and used == [2, 0, 1]
    assert unknown == [[unknown2, unknown1], [], [unknown1]]  # first appearance, once
