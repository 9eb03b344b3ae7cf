"""Every endpoint and every error, through the ASGI test client, on the session's run.

Answers are checked against the models themselves (a known user's list is what
``model.recommend`` gives with the training videos excluded; a new user's history equal
to a known user's training row gives that user's list for EASE), not against the
server's own output.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

VIDEO_KEYS = {"video_id", "caption", "categories", "tags", "duration_s", "popularity"}


def _ids(body: dict) -> list[int]:
    return [row["video_id"] for row in body["items"]]


def _expected(state, name: str, user_id: int, k: int, exclude_seen: bool = True) -> list[int]:
    model = state.models[name].model
    u = int(np.searchsorted(state.train.users.raw, user_id))
    excl = state.seen[[u]] if exclude_seen else None
    items, _ = model.recommend(np.array([u]), k, exclude=excl)
    return state.train.items.raw[items[0][items[0] >= 0]].tolist()


# ---------------------------------------------------------------------- meta
def test_health_says_what_is_loaded(client, serve_state) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["models"] == list(serve_state.models)
    assert body["n_users"] == serve_state.n_users and body["n_videos"] == serve_state.n_items
    assert body["run"] == serve_state.run_dir.name


def test_models_lists_ndcg_and_new_user_support_and_the_best_is_default(client, serve_run) -> None:
    body = client.get("/models").json()
    metrics = json.loads((serve_run / "metrics.json").read_text())["models"]
    rows = {m["name"]: m for m in body["models"]}
    assert set(rows) == {"popularity", "als", "ease", "itemknn", "bpr"}
    for name, row in rows.items():
        assert row["ndcg_at_10"] == pytest.approx(metrics[name]["metrics"]["ndcg@10"])
    assert rows["bpr"]["supports_new_users"] is False and rows["bpr"]["new_users_reason"]
    assert rows["ease"]["supports_new_users"] is True
    best = max(rows, key=lambda n: rows[n]["ndcg_at_10"])
    assert body["default_model"] == best and rows[best]["default"]
    assert rows["ease"]["form"].startswith("sparse B, top 200")


def test_openapi_docs_describe_every_endpoint(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/health",
        "/models",
        "/users/{user_id}/recommendations",
        "/recommendations",
        "/recommendations/batch",
        "/videos/{video_id}",
        "/videos/{video_id}/similar",
    ):
        assert path in paths, path
    assert client.get("/docs").status_code == 200


def test_the_page_and_its_assets_are_served(client) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "model-select" in r.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


# ---------------------------------------------------------------------- known users
@pytest.mark.parametrize("name", ["popularity", "als", "ease", "itemknn", "bpr"])
def test_known_user_list_is_the_models_own(client, serve_state, known_user, name) -> None:
    r = client.get(f"/users/{known_user}/recommendations", params={"k": 7, "model": name})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == name and body["user_id"] == known_user and body["k"] == 7
    assert _ids(body) == _expected(serve_state, name, known_user, 7)
    assert [row["rank"] for row in body["items"]] == list(range(1, 8))
    assert VIDEO_KEYS <= set(body["items"][0])
    history = client.get(f"/users/{known_user}/history", params={"limit": 1000}).json()
    assert not {row["video_id"] for row in history["items"]} & set(_ids(body))


def test_default_model_answers_without_a_model(client, serve_state, known_user) -> None:
    body = client.get(f"/users/{known_user}/recommendations").json()
    assert body["model"] == serve_state.default_model and len(body["items"]) == 10


def test_exclude_seen_false_and_small_candidates(client, serve_state, known_user) -> None:
    params = {"k": 5, "model": "als", "exclude_seen": "false"}
    body = client.get(f"/users/{known_user}/recommendations", params=params).json()
    assert _ids(body) == _expected(serve_state, "als", known_user, 5, exclude_seen=False)
    small = set(serve_state.train.items.raw[serve_state.small_candidates].tolist())
    params = {"k": 20, "candidates": "small"}
    body = client.get(f"/users/{known_user}/recommendations", params=params).json()
    assert body["candidates"] == "small" and set(_ids(body)) <= small


def test_history_endpoint_lists_recent_videos(client, serve_state, known_user) -> None:
    body = client.get(f"/users/{known_user}/history", params={"limit": 5}).json()
    u = int(np.searchsorted(serve_state.train.users.raw, known_user))
    inter = serve_state.train.interactions
    assert body["n_videos"] == int(inter.user_counts()[u])
    times = [row["last_timestamp"] for row in body["items"]]
    assert times == sorted(times, reverse=True) and len(times) == 5


def test_batch_equals_single_requests(client, serve_state) -> None:
    users = serve_state.train.users.raw[:6].tolist()
    r = client.post("/recommendations/batch", json={"user_ids": users, "k": 4, "model": "ease"})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["user_id"] for x in results] == users
    for res in results:
        assert _ids(res) == _expected(serve_state, "ease", res["user_id"], 4)


# ---------------------------------------------------------------------- new users
def test_new_user_with_a_known_users_history_gets_that_users_list(client, serve_state) -> None:
    inter = serve_state.train.interactions
    u = int(np.argmax(inter.user_counts()))
    lo, hi = inter.indptr[u], inter.indptr[u + 1]
    raw = serve_state.train.items.raw
    history = [
        {"video_id": int(raw[i]), "watch_ratio": float(w)}
        for i, w in zip(inter.indices[lo:hi], inter.watch_ratio_mean[lo:hi], strict=True)
    ]
    r = client.post("/recommendations", json={"history": history, "k": 10, "model": "ease"})
    assert r.status_code == 200
    body = r.json()
    user_id = int(serve_state.train.users.raw[u])
    assert _ids(body) == _expected(serve_state, "ease", user_id, 10)
    assert body["history_used"] == hi - lo and body["unknown_videos"] == []


def test_unknown_videos_in_a_history_are_served_and_listed(client, popular_videos) -> None:
    history = [{"video_id": popular_videos[0], "watch_ratio": 2.0}, {"video_id": 10**12}]
    history.append({"video_id": -5})
    r = client.post("/recommendations", json={"history": history, "k": 5, "model": "itemknn"})
    assert r.status_code == 200
    body = r.json()
    assert body["unknown_videos"] == [10**12, -5] and body["history_used"] == 1
    assert popular_videos[0] not in _ids(body) and len(body["items"]) == 5


def test_history_changes_the_fold_in_list(client, popular_videos) -> None:
    first = client.post("/recommendations", json={"history": [], "model": "als"}).json()
    more = [{"video_id": v, "watch_ratio": 3.0} for v in popular_videos[5:12]]
    second = client.post("/recommendations", json={"history": more, "model": "als"}).json()
    assert _ids(first) != _ids(second) and first["history_used"] == 0


def test_a_model_without_fold_in_answers_422(client, popular_videos) -> None:
    body = {"history": [{"video_id": popular_videos[0]}], "model": "bpr"}
    r = client.post("/recommendations", json=body)
    assert r.status_code == 422 and "bpr cannot score" in r.json()["detail"]


def test_user_features_are_checked_against_the_files_columns(client, popular_videos) -> None:
    history = [{"video_id": popular_videos[0]}]
    ok = {"history": history, "user_features": {"user_active_degree": "high_active"}}
    r = client.post("/recommendations", json=ok)
    assert r.status_code == 200 and r.json()["user_features_used"] is False
    bad = {"history": history, "user_features": {"shoe_size": 3}}
    r = client.post("/recommendations", json=bad)
    assert r.status_code == 422 and "shoe_size" in r.json()["detail"]


# ---------------------------------------------------------------------- videos
def test_video_metadata(client, serve_state, popular_videos) -> None:
    body = client.get(f"/videos/{popular_videos[0]}").json()
    assert set(body) == VIDEO_KEYS and body["video_id"] == popular_videos[0]
    assert body["caption"] and body["categories"] and body["tags"]
    page = client.get("/videos", params={"limit": 5, "offset": 0}).json()
    assert [v["video_id"] for v in page["items"]] == popular_videos[:5]
    assert page["total"] == serve_state.n_items


@pytest.mark.parametrize(
    ("name", "source"),
    [("ease", "model"), ("itemknn", "model"), ("als", "model"), ("popularity", "tags")],
)
def test_similar_videos_use_the_models_similarity_or_tags(
    client, serve_state, popular_videos, name, source
) -> None:
    vid = popular_videos[0]
    r = client.get(f"/videos/{vid}/similar", params={"k": 5, "model": name})
    assert r.status_code == 200
    body = r.json()
    assert body["similarity"] == source and body["model"] == name
    assert vid not in _ids(body) and body["video"]["video_id"] == vid
    if source == "model":
        item = int(np.searchsorted(serve_state.train.items.raw, vid))
        expect, _ = serve_state.models[name].model.similar_items([item], 5)
        assert _ids(body) == serve_state.train.items.raw[expect[0][expect[0] >= 0]].tolist()
    else:
        tags = set(body["video"]["tags"])
        assert all(tags & set(row["tags"]) for row in body["items"])


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/users/987654321/recommendations", 404, "user_id 987654321"),
        ("/users/987654321/history", 404, "user_id 987654321"),
        ("/videos/987654321", 404, "video_id 987654321"),
        ("/videos/987654321/similar", 404, "video_id 987654321"),
        ("/users/abc/recommendations", 422, "user_id"),
        ("/users/{u}/recommendations?k=0", 422, "k"),
        ("/users/{u}/recommendations?k=1001", 422, "k"),
        ("/users/{u}/recommendations?k=ten", 422, "k"),
        ("/users/{u}/recommendations?k=1000&candidates=small", 422, "candidate"),
        ("/users/{u}/recommendations?candidates=most", 422, "candidates"),
        ("/users/{u}/recommendations?model=nope", 400, "not served"),
        ("/users/{u}/recommendations?exclude_seen=maybe", 422, "exclude_seen"),
        (f"/users/{2**64}/recommendations", 422, "user_id"),
        ("/videos/{v}/similar?k=100000", 422, "k"),
        ("/nowhere", 404, "Not Found"),
    ],
)
def test_get_errors_have_a_status_and_a_message(
    client, known_user, popular_videos, path, status, words
) -> None:
    r = client.get(path.format(u=known_user, v=popular_videos[0]))
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def _big_history(n: int) -> list[dict]:
    return [{"video_id": i} for i in range(n)]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/recommendations", b"{not json", 422, "JSON"),
        ("/recommendations", b"", 422, "body"),
        ("/recommendations", {"k": 5}, 422, "history"),
        ("/recommendations", {"history": [{"video_id": "3"}]}, 422, "video_id"),
        ("/recommendations", {"history": [{"video_id": 3, "watch_ratio": -1}]}, 422, "watch"),
        ("/recommendations", {"history": [{"video_id": 3, "watch_ratio": "NaN"}]}, 422, "watch"),
        ("/recommendations", {"history": [], "k": 0}, 422, "k"),
        ("/recommendations", {"history": [], "k": True}, 422, "k"),
        ("/recommendations", {"history": [], "colour": 1}, 422, "colour"),
        ("/recommendations", {"history": {"video_id": 3}}, 422, "history"),
        ("/recommendations", {"history": _big_history(10_001)}, 422, "history"),
        ("/recommendations", {"history": [], "model": "nope"}, 400, "not served"),
        ("/recommendations/batch", {"user_ids": []}, 422, "user_ids"),
        ("/recommendations/batch", {"user_ids": list(range(1001))}, 422, "user_ids"),
        ("/recommendations/batch", {"user_ids": [987654321]}, 404, "987654321"),
        ("/recommendations/batch", {"user_ids": [1.5]}, 422, "user_ids"),
    ],
)
def test_post_errors_have_a_status_and_a_message(client, path, body, status, words) -> None:
    if isinstance(body, bytes):
        r = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_nan_in_raw_json_is_refused(client) -> None:
    raw = b'{"history": [{"video_id": 3, "watch_ratio": NaN}]}'
    r = client.post("/recommendations", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_limits_at_the_edge_are_served(client, serve_state, known_user) -> None:
    r = client.post(
        "/recommendations", json={"history": _big_history(10_000), "k": serve_state.n_items}
    )
    assert r.status_code == 200
    users = serve_state.train.users.raw[np.arange(1000) % serve_state.n_users].tolist()
    r = client.post("/recommendations/batch", json={"user_ids": users, "k": 1, "model": "als"})
    assert r.status_code == 200 and len(r.json()["results"]) == 1000


# ---------------------------------------------------------------------- concurrency
def test_concurrent_requests_get_the_answers_of_sequential_ones(client, serve_state) -> None:
    users = serve_state.train.users.raw[:24].tolist()
    models = ["als", "ease", "itemknn"]
    jobs = [(u, models[i % 3]) for i, u in enumerate(users)] * 3

    def ask(job):
        u, m = job
        return _ids(client.get(f"/users/{u}/recommendations", params={"model": m}).json())

    sequential = [ask(j) for j in jobs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(ask, jobs))
    assert parallel == sequential
    for u, m in jobs[:6]:
        assert ask((u, m)) == _expected(serve_state, m, u, 10)


def test_loading_builds_lazy_caches_so_requests_never_write_the_state(serve_state) -> None:
    als = serve_state.models["als"].model
    assert als._gram_key is not None  # the fold-in Gram: built once, before any fork
    before = als._gram_value.copy()
    als.recommend(history=serve_state.seen[[0]], k=5)
    assert als._gram_value is not None and np.array_equal(als._gram_value, before)
