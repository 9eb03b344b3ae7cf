"""Request and response bodies (pydantic): the OpenAPI schema and the request checks.

Request bodies are strict (unknown fields are refused, ``true`` is not a number) and
bounded: k from 1 to :data:`MAX_K`, at most :data:`MAX_BATCH_USERS` users per batch and
:data:`MAX_HISTORY` videos per posted history. An id is a 64-bit integer (signed, or
unsigned for a run whose ids are hashes beyond ``2**63 - 1``) or, for a run on a log with
text ids, a string of at most :data:`MAX_TEXT_ID` characters; which one a run takes is
checked against its id map (:mod:`kuairec.serve.scoring`): a string is refused where the
ids are integers.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

MAX_K = 1000
MAX_BATCH_USERS = 1000
MAX_HISTORY = 10_000
MAX_ID = 2**63 - 1
MAX_UNSIGNED_ID = 2**64 - 1
MAX_TEXT_ID = 200
MAX_WATCH_RATIO = 1e6
DEFAULT_WATCH_RATIO = 1.0

Id = (
    Annotated[int, Field(ge=-MAX_ID - 1, le=MAX_UNSIGNED_ID)]
    | Annotated[str, Field(min_length=1, max_length=MAX_TEXT_ID)]
)
RawId = int | str  # an id as the run's data wrote it
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"list length, 1 to {MAX_K}")]
Candidates = Literal["all", "small"]
FeatureValue = str | int | float | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# A TypedDict, not a model: a 50-video history validates in half the time (no model
# instance per entry), which was a tenth of a new user's request.
class HistoryEntry(TypedDict):
    """One watched video of a new user's history."""

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]
    video_id: Id
    watch_ratio: NotRequired[
        Annotated[
            float,
            Field(
                ge=0,
                le=MAX_WATCH_RATIO,
                allow_inf_nan=False,
                description="play / duration; 1.0 when left out",
                json_schema_extra={"default": DEFAULT_WATCH_RATIO},
            ),
        ]
    ]


class NewUserRequest(_Strict):
    history: list[HistoryEntry] = Field(max_length=MAX_HISTORY)
    k: K = 10
    model: str | None = Field(None, max_length=200, description="default: the run's best")
    exclude_seen: bool = True
    candidates: Candidates = "all"
    user_features: dict[str, FeatureValue] | None = Field(
        None, max_length=200, description="user_features.csv's columns (for models that use them)"
    )


class BatchRequest(_Strict):
    user_ids: list[Id] = Field(min_length=1, max_length=MAX_BATCH_USERS)
    k: K = 10
    model: str | None = Field(None, max_length=200)
    exclude_seen: bool = True
    candidates: Candidates = "all"


class Video(BaseModel):
    video_id: RawId
    caption: str | None
    categories: list[str] = Field(description="category names, first to third level")
    tags: list[str]
    duration_s: float | None
    popularity: int = Field(description="training users who watched it")


class RankedVideo(Video):
    rank: int
    score: float | None


class WatchedVideo(Video):
    watch_ratio: float | None
    views: int
    last_timestamp: float | None


class Recommendations(BaseModel):
    user_id: RawId | None
    model: str = Field(description="the model that answered")
    k: int
    candidates: Candidates
    items: list[RankedVideo]


class NewUserRecommendations(Recommendations):
    history_used: int = Field(description="distinct known videos of the history")
    unknown_videos: list[RawId] = Field(description="posted video ids the data does not know")
    user_features_used: bool
    fallback: Literal["most_watched"] | None = Field(
        description="'most_watched' when the history holds no known video with a watch "
        "ratio above 0: the model has nothing to go on, so the videos most training users "
        "watched answer (score: that count)"
    )


class BatchRecommendations(BaseModel):
    results: list[Recommendations]


class SimilarVideos(BaseModel):
    video: Video
    model: str
    similarity: Literal["model", "tags"] = Field(
        description="the model's own item-item similarity, or tag overlap when it has none"
    )
    similarity_note: str | None
    k: int
    items: list[RankedVideo]


class UserHistory(BaseModel):
    user_id: RawId
    n_videos: int
    items: list[WatchedVideo]


class VideoPage(BaseModel):
    total: int
    items: list[Video]


class UserPage(BaseModel):
    total: int
    user_ids: list[RawId]


class ModelInfo(BaseModel):
    name: str
    ndcg_at_10: float | None = Field(description="NDCG@10 in the run's evaluation")
    supports_new_users: bool
    new_users_reason: str | None
    reference: bool
    default: bool
    form: str


class Models(BaseModel):
    default_model: str
    models: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok"]
    run: str
    default_model: str
    models: list[str]
    n_users: int
    n_videos: int
    load_seconds: float


class Error(BaseModel):
    detail: str
    errors: list[dict] | None = None
