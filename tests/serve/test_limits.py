"""What a network client can make the server do, through the ASGI app: bodies and batches
over their limits are JSON 413s, HEAD is answered where GET is, ids in paths are
canonical integers, an empty history falls back to popularity (said so), and a run on a
log with text ids and 64-bit hashes is served with the ids as the log wrote them."""

from __future__ import annotations

import numpy as np
import pytest

from kuairec.serve.limits import ServeLimits


@pytest.fixture(scope="module")
def small_client(serve_state):
    """The session's run with small limits, so that going over them costs little."""
    from fastapi.testclient import TestClient

    from kuairec.serve.app import create_app

    limits = ServeLimits(max_body_bytes=10_000, max_batch_work=50)
    with TestClient(create_app(serve_state, limits=limits), raise_server_exceptions=False) as c:
        yield c


# ---------------------------------------------------------------------- sizes
def test_a_body_over_the_limit_is_a_json_413_before_it_is_read(small_client) -> None:
    history = [{"video_id": i} for i in range(1000)]  # ~16 KB of JSON
    r = small_client.post("/recommendations", json={"history": history})
    assert r.status_code == 413 and r.headers["content-type"] == "application/json"
    assert "request body too large" in r.json()["detail"] and "10,000 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while it is read
        yield b'{"history": ['
        for i in range(2000):
            yield b'{"video_id": %d},' % i
        yield b'{"video_id": 1}]}'

    r = small_client.post(
        "/recommendations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "request body too large" in r.json()["detail"]
    r = small_client.post("/recommendations", json={"history": history[:100]})
    assert r.status_code == 200  # under the limit: served
    # refused from its Content-Length alone: a route that never reads a body too
    r = small_client.request("GET", "/health", content=b"x" * 20_000)
    assert r.status_code == 413 and r.headers["connection"] == "close"


def test_a_batch_over_its_work_limit_is_a_413_naming_users_times_k(small_client, serve_state):
    users = serve_state.train.users.raw[:10].tolist()
    r = small_client.post("/recommendations/batch", json={"user_ids": users, "k": 6})
    assert r.status_code == 413
    assert "10 users x k=6 = 60 list entries, the limit is 50" in r.json()["detail"]
    r = small_client.post("/recommendations/batch", json={"user_ids": users, "k": 5})
    assert r.status_code == 200 and len(r.json()["results"]) == 10


def test_the_default_limits_fit_the_documented_requests(client, serve_state) -> None:
    """10,000 history entries (200-character text ids too) fit the default body limit;
    1,000 users x k=101 is over the default batch work."""
    import json

    limits = ServeLimits()
    history = [{"video_id": 2**63 - 1 - i, "watch_ratio": 1.2345678} for i in range(10_000)]
    assert len(json.dumps({"history": history, "k": 1000})) < limits.max_body_bytes
    text = [{"video_id": f"{i:0200d}", "watch_ratio": 1.2345678} for i in range(10_000)]
    assert len(json.dumps({"history": text, "k": 1000})) < limits.max_body_bytes
    users = serve_state.train.users.raw[np.arange(1000) % serve_state.n_users].tolist()
    over = client.post("/recommendations/batch", json={"user_ids": users, "k": 101})
    assert over.status_code == 413 and "101,000 list entries" in over.json()["detail"]


@pytest.mark.slow
def test_the_largest_default_batch_is_served(client, serve_state) -> None:
    users = serve_state.train.users.raw[np.arange(1000) % serve_state.n_users].tolist()
    ok = client.post("/recommendations/batch", json={"user_ids": users, "k": 100})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 1000


# ---------------------------------------------------------------------- HEAD and ids
@pytest.mark.parametrize(
    "path", ["/health", "/models", "/videos?limit=2", "/", "/users/{u}/history"]
)
def test_head_is_answered_wherever_get_is(client, known_user, path: str) -> None:
    path = path.format(u=known_user)
    get, head = client.get(path), client.head(path)
    assert get.status_code == 200 and head.status_code == 200, head.text
    assert head.content == b"" and head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]


def test_head_where_get_is_not_answered_is_not_allowed(client) -> None:
    assert client.head("/recommendations").status_code == 405


@pytest.mark.parametrize("written", ["1_0", "+0", "010", " 1", "1 ", "0x1", "1e3", "١"])
def test_ids_in_paths_must_be_canonical_integers(client, written: str) -> None:
    """``1_0`` and ``+0`` used to be read as 10 and 0."""
    for path in ("/users/{}/recommendations", "/users/{}/history", "/videos/{}"):
        r = client.get(path.format(written))
        assert r.status_code == 422, (path, written, r.text)
        assert "must be an integer written plainly" in r.json()["detail"]


def test_canonical_ids_are_looked_up(client, known_user, popular_videos) -> None:
    assert client.get(f"/users/{known_user}/recommendations?k=2").status_code == 200
    assert client.get(f"/videos/{popular_videos[0]}").json()["video_id"] == popular_videos[0]
    assert client.get("/users/-7/history").status_code == 404
    assert client.get(f"/videos/{2**63}").status_code == 422  # beyond this run's int64 ids


# ---------------------------------------------------------------------- empty histories
@pytest.mark.parametrize("model", ["ease", "itemknn", "als", "popularity"])
@pytest.mark.parametrize(
    "history", [[], [{"video_id": 0, "watch_ratio": 0.0}], [{"video_id": 10**15}]],
    ids=["empty", "all_zero", "unknown_only"],
)  # fmt: skip
def test_a_history_with_nothing_to_go_on_gets_the_most_watched_and_says_so(
    client, serve_state, popular_videos, model: str, history: list
) -> None:
    """EASE and item-kNN answered videos 0, 1, 2 ... in id order with score 0."""
    if history and history[0]["video_id"] == 0:
        history = [{"video_id": popular_videos[0], "watch_ratio": 0.0}]
    r = client.post("/recommendations", json={"history": history, "k": 5, "model": model})
    body = r.json()
    assert r.status_code == 200 and body["fallback"] == "most_watched"
    skip = {h["video_id"] for h in history}
    expected = [v for v in popular_videos if v not in skip][:5]
    assert [row["video_id"] for row in body["items"]] == expected
    scores = [row["score"] for row in body["items"]]
    assert scores == [row["popularity"] for row in body["items"]] and scores[0] > 0


def test_a_history_with_a_watched_video_is_the_models_own(client, popular_videos) -> None:
    history = [{"video_id": popular_videos[3], "watch_ratio": 1.5}]
    body = client.post("/recommendations", json={"history": history, "model": "ease"}).json()
    assert body["fallback"] is None and body["history_used"] == 1


def test_fallback_respects_the_small_candidates(client, serve_state) -> None:
    body = client.post(
        "/recommendations", json={"history": [], "k": 7, "candidates": "small"}
    ).json()
    small = set(serve_state.train.items.raw[serve_state.small_candidates].tolist())
    assert (
        body["fallback"] == "most_watched" and {row["video_id"] for row in body["items"]} <= small
    )


# ---------------------------------------------------------------------- text ids
HASH = 18446744073709500202  # beyond int64: an unsigned 64-bit video id


@pytest.fixture(scope="module")
def text_client(tmp_path_factory):
    """A temporal run on a log with text user ids and unsigned 64-bit video ids."""
    from fastapi.testclient import TestClient

    from kuairec.cli import main
    from kuairec.serve.app import create_app
    from kuairec.serve.state import load_state

    folder = tmp_path_factory.mktemp("text-ids")
    rng = np.random.default_rng(5)
    rows = ["user_id,video_id,timestamp,watch_ratio"]
    for i in range(600):
        u, v = int(rng.integers(0, 30)), int(rng.integers(0, 40))
        video = HASH - v if v % 2 else v
        rows.append(f"user-{u},{video},{1_600_000_000_000 + i * 1000},{rng.exponential(1.5):.3f}")
    log = folder / "log.csv"
    log.write_text("\n".join(rows) + "\n")
    runs = folder / "runs"
    argv = ["run", "--interactions", str(log), "--runs-dir", str(runs), "--no-tune", "-q"]
    assert main([*argv, "--models", "popularity,itemknn,ease", "--bootstrap", "10"]) == 0
    (run,) = runs.iterdir()
    with TestClient(create_app(load_state(run)), raise_server_exceptions=False) as c:
        yield c


def test_a_run_on_text_ids_is_served_with_the_ids_as_written(text_client) -> None:
    users = text_client.get("/users?limit=3").json()["user_ids"]
    assert all(isinstance(u, str) and u.startswith("user-") for u in users)
    body = text_client.get(f"/users/{users[0]}/recommendations?k=5&model=itemknn").json()
    assert body["user_id"] == users[0] and len(body["items"]) == 5
    videos = [row["video_id"] for row in body["items"]]
    assert all(isinstance(v, int) for v in videos) and any(v > 2**63 for v in videos)
    big = next(v for v in videos if v > 2**63)
    assert text_client.get(f"/videos/{big}").json()["video_id"] == big
    assert text_client.get(f"/videos/{big}/similar?k=2&model=itemknn").status_code == 200
    history = [{"video_id": big, "watch_ratio": 2.0}, {"video_id": 2**64 - 1}]
    body = text_client.post("/recommendations", json={"history": history, "k": 3}).json()
    assert body["history_used"] == 1 and body["unknown_videos"] == [2**64 - 1]
    batch = text_client.post("/recommendations/batch", json={"user_ids": users[:2], "k": 2})
    assert [r["user_id"] for r in batch.json()["results"]] == users[:2]
    r = text_client.get("/users/user-999/history")
    assert r.status_code == 404 and "user-999" in r.json()["detail"]
    assert text_client.get("/users/1_0/history").status_code == 404  # text: looked up as is


def test_integer_runs_refuse_text_ids_in_bodies(client, known_user) -> None:
    r = client.post("/recommendations/batch", json={"user_ids": [str(known_user)]})
    assert r.status_code == 422 and "must be an integer" in r.json()["detail"]
    r = client.post("/recommendations", json={"history": [{"video_id": "3"}]})
    assert r.status_code == 422
