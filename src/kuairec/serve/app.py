"""The HTTP API and the web page: ``create_app(state)`` builds a FastAPI application.

Nothing is loaded at import time and there are no module globals: the factory takes a
loaded :class:`~kuairec.serve.state.ServeState` (or loads one from ``run=``) and every
route reads it from its closure. The state is read-only, so concurrent requests need no
lock.

Handlers are coroutines run on the event loop: a request is ~0.1-1 ms of CPU-bound numpy
under the GIL, so a thread pool bought no parallelism and its hand-offs cost more than
the scoring (one worker answered ALS at 466 requests/s from the thread pool, 857 on the
loop; ``--workers`` is the parallelism). The one long request, a batch of up to 1,000
users, is a plain function run in the thread pool so it cannot hold the loop. Known
users' lists and new users' histories go through a
:class:`~kuairec.serve.batching.MicroBatcher`: requests that arrive together are scored
in one model call. Responses are encoded by orjson.

Every error is a JSON ``{"detail": message}`` with a 4xx status: unknown users or videos
404, bad values, wrong types or malformed JSON 422, an unknown model 400, a body or a
batch over its limit 413 (:class:`~kuairec.serve.limits.ServeLimits`). ``HEAD`` is
answered wherever ``GET`` is. Ids in paths are read in the type of the run's ids: a
canonical integer (``1_0`` and ``+0`` are refused) or, for a log with text ids, the text.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from kuairec import __version__
from kuairec.serve import schemas as S
from kuairec.serve import scoring
from kuairec.serve.batching import MicroBatcher
from kuairec.serve.limits import LimitsMiddleware, ServeLimits
from kuairec.serve.state import DEFAULT_EASE_TOP_N, ServeState, load_state

STATIC = Path(__file__).parent / "static"


class FastJSONRequest(Request):
    """A request whose JSON body orjson decodes (4x faster than ``json.loads`` on a
    50-video history). Invalid JSON, NaN and Infinity literals included, raises
    ``orjson.JSONDecodeError``, a ``json.JSONDecodeError``: FastAPI's 422 as before."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            import orjson

            self._json = orjson.loads(await self.body())
        return self._json


class Route(APIRoute):
    """FastAPI's route with :class:`FastJSONRequest` bodies (its documented way to change
    the request class)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(FastJSONRequest(request.scope, request.receive))

        return route


class JSON(JSONResponse):
    """A JSON response encoded by orjson (several times faster than ``json.dumps`` on a
    list of ten videos with their metadata; non-finite floats are already None)."""

    def render(self, content: Any) -> bytes:
        import orjson

        return orjson.dumps(content)


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": S.Error, "description": why}
    for code, why in (
        (400, "unknown model"),
        (404, "unknown user or video"),
        (413, "request body, or a batch's users x k, over its limit"),
        (422, "bad input"),
    )
}

_ID_DOC = "raw {}: an integer (written plainly), or the text id of a log with text ids"
UserId = Annotated[str, PathParam(max_length=S.MAX_TEXT_ID, description=_ID_DOC.format("user_id"))]
VideoId = Annotated[
    str, PathParam(max_length=S.MAX_TEXT_ID, description=_ID_DOC.format("video_id"))
]
KQuery = Annotated[int, Query(ge=1, le=S.MAX_K, description=f"1 to {S.MAX_K}")]
ModelQuery = Annotated[str | None, Query(max_length=200, description="default: the best")]
Limit = Annotated[int, Query(ge=1, le=S.MAX_K)]
Offset = Annotated[int, Query(ge=0, le=S.MAX_ID)]


def create_app(
    state: ServeState | None = None,
    *,
    run: Path | str | None = None,
    model: str | None = None,
    ease_top_n: int = DEFAULT_EASE_TOP_N,
    limits: ServeLimits | None = None,
) -> FastAPI:
    """The application serving ``state`` (or the run folder ``run``, loaded now), within
    ``limits`` (default: :class:`ServeLimits`' defaults)."""
    limits = limits or ServeLimits()
    if state is None:
        if run is None:
            raise TypeError("create_app needs a loaded state or run=<run folder>")
        state = load_state(run, model=model, ease_top_n=ease_top_n)
    app = FastAPI(
        title="kuairec",
        version=__version__,
        description=f"Recommendations from the run {state.run_dir.name} "
        f"(default model: {state.default_model}). The web page is at /.",
        responses=ERRORS,
        default_response_class=JSON,
    )
    app.router.route_class = Route
    app.state.serve = state
    app.state.limits = limits
    app.add_middleware(LimitsMiddleware, max_body_bytes=limits.max_body_bytes)
    batchers = _batchers(state)
    app.state.batchers = batchers
    _error_handlers(app)
    _meta_routes(app, state)
    _user_routes(app, state, batchers["users"])
    _new_user_routes(app, state, batchers["histories"], limits)
    _video_routes(app, state)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _batchers(state: ServeState) -> dict[str, MicroBatcher]:
    """One micro-batcher per kind of list request; a key holds what one model call shares
    (k, model, exclude_seen, candidates: the arguments after the payloads of
    scoring.recommend_users and recommend_histories); payloads are user ids or histories."""
    return {
        "users": MicroBatcher(lambda key, ids: scoring.recommend_users(state, list(ids), *key)),
        "histories": MicroBatcher(
            lambda key, histories: scoring.recommend_histories(state, histories, *key)
        ),
    }


# ---------------------------------------------------------------------- errors
def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(scoring.ServeError)
    async def _serve_error(request: Request, exc: scoring.ServeError) -> JSON:
        return JSON({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSON:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()[:20]
        ]
        text = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return JSON({"detail": text or "invalid request", "errors": errors}, 422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSON:
        return JSON({"detail": str(exc.detail)}, exc.status_code, headers=exc.headers)


# ---------------------------------------------------------------------- routes
def _meta_routes(app: FastAPI, state: ServeState) -> None:
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/health", response_model=S.Health, summary="Loaded and ready")
    async def health() -> JSON:
        return JSON(
            {
                "status": "ok",
                "run": state.run_dir.name,
                "default_model": state.default_model,
                "models": list(state.models),
                "n_users": state.n_users,
                "n_videos": state.n_items,
                "load_seconds": state.load_seconds,
            }
        )

    @app.get("/models", response_model=S.Models, summary="Served models and their NDCG@10")
    async def models() -> JSON:
        rows = [
            {
                "name": m.name,
                "ndcg_at_10": m.ndcg_at_10,
                "supports_new_users": m.supports_history,
                "new_users_reason": m.history_reason,
                "reference": m.reference,
                "default": m.name == state.default_model,
                "form": m.form,
            }
            for m in state.models.values()
        ]
        return JSON({"default_model": state.default_model, "models": rows})


def _user_routes(app: FastAPI, state: ServeState, batcher: MicroBatcher) -> None:
    @app.get("/users", response_model=S.UserPage, summary="Known user ids")
    async def users(limit: Limit = 100, offset: Offset = 0) -> JSON:
        raw = state.train.users.raw
        return JSON({"total": int(raw.size), "user_ids": raw[offset : offset + limit].tolist()})

    @app.get(
        "/users/{user_id}/recommendations",
        response_model=S.Recommendations,
        summary="Top-k videos for a known user",
    )
    async def user_recommendations(
        user_id: UserId,
        k: KQuery = 10,
        model: ModelQuery = None,
        exclude_seen: bool = True,
        candidates: S.Candidates = "all",
    ) -> JSON:
        raw = scoring.path_id(state.train.users, user_id, "user_id")
        scoring.user_index(state, raw)  # an unknown user fails alone, not its batch
        out = await batcher.submit((k, model, exclude_seen, candidates), raw)
        return JSON(out)

    @app.get(
        "/users/{user_id}/history",
        response_model=S.UserHistory,
        summary="A known user's training videos, most recent first",
    )
    async def user_history(user_id: UserId, limit: Limit = 20) -> JSON:
        raw = scoring.path_id(state.train.users, user_id, "user_id")
        user = scoring.user_index(state, raw)
        items = state.catalogue.recent_history(user, limit)
        n = state.catalogue.n_history(user)
        return JSON({"user_id": raw, "n_videos": n, "items": items})


def _new_user_routes(
    app: FastAPI, state: ServeState, batcher: MicroBatcher, limits: ServeLimits
) -> None:
    import asyncio

    from starlette.concurrency import run_in_threadpool

    batch_slots = asyncio.Semaphore(limits.batch_concurrency)

    @app.post(
        "/recommendations",
        response_model=S.NewUserRecommendations,
        summary="Top-k videos for a new user, from their history (fold-in)",
    )
    async def new_user(request: Annotated[S.NewUserRequest, Body()]) -> JSON:
        ratio = S.DEFAULT_WATCH_RATIO
        pairs = [(h["video_id"], h.get("watch_ratio", ratio)) for h in request.history]
        key = (request.k, request.model, request.exclude_seen, request.candidates)
        if request.user_features:  # features are per request: scored on their own
            out = scoring.recommend_history(state, pairs, *key, request.user_features)
        else:
            out = await batcher.submit(key, pairs)
        return JSON(out)

    @app.post(
        "/recommendations/batch",
        response_model=S.BatchRecommendations,
        summary=f"Top-k videos for up to {S.MAX_BATCH_USERS} known users",
    )
    async def batch(request: Annotated[S.BatchRequest, Body()]) -> JSON:
        work = len(request.user_ids) * request.k
        if work > limits.max_batch_work:
            raise scoring.ServeError(
                413, f"batch too large: {len(request.user_ids):,} users x k={request.k} = "
                f"{work:,} list entries, the limit is {limits.max_batch_work:,} per request "
                "(--max-batch-work): send fewer users per request or a smaller k",
            )  # fmt: skip
        ids = [scoring.body_id(state.train.users, u, "user_id") for u in request.user_ids]
        key = (request.k, request.model, request.exclude_seen, request.candidates)

        def answer() -> JSON:  # long: scored and encoded in the thread pool, not the loop
            return JSON({"results": scoring.recommend_users(state, ids, *key)})

        async with batch_slots:  # bounded memory: a few batches at once, the rest wait
            return await run_in_threadpool(answer)


def _video_routes(app: FastAPI, state: ServeState) -> None:
    @app.get("/videos", response_model=S.VideoPage, summary="Videos, most watched first")
    async def videos(limit: Limit = 50, offset: Offset = 0) -> JSON:
        order = state.catalogue.by_popularity[offset : offset + limit]
        items = [state.catalogue.video(int(i)) for i in order]
        return JSON({"total": state.n_items, "items": items})

    @app.get("/videos/{video_id}", response_model=S.Video, summary="One video")
    async def video(video_id: VideoId) -> JSON:
        raw = scoring.path_id(state.train.items, video_id, "video_id")
        return JSON(state.catalogue.video(scoring.video_index(state, raw)))

    @app.get(
        "/videos/{video_id}/similar",
        response_model=S.SimilarVideos,
        summary="Similar videos by the model's own item-item similarity",
    )
    async def similar(video_id: VideoId, k: KQuery = 10, model: ModelQuery = None) -> JSON:
        raw = scoring.path_id(state.train.items, video_id, "video_id")
        return JSON(scoring.similar_videos(state, raw, k, model))
