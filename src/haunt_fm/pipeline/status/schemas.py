"""The /api/status document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class PipelineCounts(BaseModel):
    listens: int
    listened_tracks: int
    tracks: int
    candidates: int
    preview: PreviewCounts
    embedding: EmbeddingCounts


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


class PreviewStatus(BaseModel):
    enabled: bool
    rate_per_minute: float
    last_lookup_at: str | None
    last_error: str | None
    last_error_at: str | None


class HomeAssistantStatus(BaseModel):
    configured: bool


class ProfileStatus(BaseModel):
    name: str
    display_name: str | None
    listens: int
    taste_built_at: datetime | None


class StatusOut(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
    version: str
    pipeline: PipelineCounts
    worker: WorkerSummary
    discovery: DiscoveryStatus
    previews: PreviewStatus
    homeassistant: HomeAssistantStatus
    profiles: list[ProfileStatus]
    feedback: int


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
