"""The /api/status document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from haunt_fm.pipeline.imports.schemas import ImportOut

WorkerState = Literal["disabled", "idle", "working", "error"]


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]


class PreviewCounts(BaseModel):
    pending: int = 0
    found: int = 0
    not_found: int = 0
    failed: int = 0


class EmbeddingCounts(BaseModel):
    pending: int = 0
    done: int = 0
    failed: int = 0
    waiting: int = Field(default=0, description="Tracks whose preview is not found yet.")
    model: str = Field(
        default="", description="The current CLAP model (HAUNTFM_CLAP_MODEL): only its vectors are used."
    )
    outdated: int = Field(
        default=0,
        description="Vectors made by another model, left out of every query until their track is "
        "re-embedded (in the background, as `pending`): the re-embedding progress after a model switch.",
    )


class TagCounts(BaseModel):
    pending: int = Field(default=0, description="Tracks whose Last.fm tags are still to be fetched.")
    done: int = 0
    failed: int = 0


class PipelineCounts(BaseModel):
    listens: int
    listened_tracks: int
    tracks: int
    candidates: int
    preview: PreviewCounts
    embedding: EmbeddingCounts
    tags: TagCounts = Field(default_factory=TagCounts)


class WorkerOut(BaseModel):
    id: str
    state: str
    model: str | None
    last_batch_at: datetime | None
    last_error: str | None
    tracks_done: int
    heartbeat_at: datetime


class WorkerSummary(BaseModel):
    enabled: bool
    state: WorkerState = Field(description="Aggregate over live workers: working > idle > error.")
    model: str
    last_batch_at: datetime | None
    last_error: str | None
    text_tower_ok: bool | None
    text_tower_note: str | None
    workers: list[WorkerOut] = Field(description="Workers whose heartbeat is recent.")


class DiscoveryStatus(BaseModel):
    lastfm_configured: bool
    last_run_at: str | None
    last_run: dict[str, Any] | None
    last_error: str | None
    running: dict[str, Any] | None = Field(description="The run in progress (seeds done of total).")
    interval_hours: float = Field(description="serve runs discovery by itself this often (0 = off).")
    next_run_at: datetime | None = Field(description="When serve runs discovery next, if scheduled.")


class PreviewStatus(BaseModel):
    enabled: bool
    rate_per_minute: float
    last_lookup_at: str | None
    last_error: str | None
    last_error_at: str | None


class ReconciliationWindow(BaseModel):
    start: datetime
    end: datetime


class ReconciliationStatus(BaseModel):
    """The last reading of Home Assistant's history for listens the webhook missed."""

    enabled: bool
    interval_minutes: float
    last_run_at: datetime | None
    kind: str | None = Field(description="`periodic` or `backfill`.")
    window: ReconciliationWindow | None
    players: list[str]
    listens_found: int | None
    listens_recovered: int | None
    error: str | None
    last_error: str | None
    last_error_at: datetime | None


class TagsStatus(BaseModel):
    enabled: bool = Field(description="Tags are fetched (a Last.fm key is configured).")
    last_fetch_at: str | None
    last_error: str | None
    last_error_at: str | None


class HomeAssistantStatus(BaseModel):
    configured: bool
    reconciliation: ReconciliationStatus


class ProfileStatus(BaseModel):
    name: str
    display_name: str | None
    listens: int
    taste_built_at: datetime | None


class ImportsStatus(BaseModel):
    running: list[ImportOut] = Field(description="History imports running (or waiting to be retried).")
    last_finished: ImportOut | None = Field(description="The import that ended last.")


class StatusOut(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
    version: str
    pipeline: PipelineCounts
    worker: WorkerSummary
    discovery: DiscoveryStatus
    previews: PreviewStatus
    tags: TagsStatus
    homeassistant: HomeAssistantStatus
    profiles: list[ProfileStatus]
    feedback: int
    imports: ImportsStatus


# --- retry-failed ---------------------------------------------------------------------------

RetryStage = Literal["previews", "embeddings"]


class RetryFailedIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"stage": "previews"}})

    stage: RetryStage | None = Field(
        default=None, description="`previews` or `embeddings`; omitted or null: both."
    )


class RetryFailedOut(BaseModel):
    requeued: int = Field(description="Failed tracks put back in the queue, over the stages asked for.")
    stages: dict[RetryStage, int] = Field(description="How many per stage asked for.")
