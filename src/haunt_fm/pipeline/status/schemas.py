"""The /api/status document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from haunt_fm.pipeline.imports.schemas import ImportOut

WorkerState = Literal["disabled", "loading", "idle", "working", "error"]


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


class DownloadOut(BaseModel):
    """How far a worker's download of its model from the Hugging Face hub got."""

    done: int = Field(description="Bytes downloaded so far (this start).")
    total: int | None = Field(
        description="Bytes to download in all, as the hub announced them; null until it has."
    )


class EmbeddingRuntimeOut(BaseModel):
    """Which runtime runs the audio tower, and why (HAUNTFM_EMBEDDING_RUNTIME, README "Embedding runtime")."""

    requested: str | None = Field(
        default=None, description="HAUNTFM_EMBEDDING_RUNTIME: `torch`, `onnx`, `onnx-int8` or `auto`."
    )
    runtime: str = Field(description="The runtime in use: `torch`, `onnx` (fp32) or `onnx-int8`.")
    reason: str | None = Field(
        default=None,
        description="Why this runtime: the setting, the fidelity gate's figures, auto's timing, or what "
        "a fallback replaced and why.",
    )
    threads: int | None = Field(default=None, description="Intra-op threads of torch and ONNX Runtime.")
    gate: dict[str, Any] | None = Field(
        default=None,
        description="Per exported file (`onnx`, `onnx-int8`): the fidelity gate's verdict (`passed`, "
        "`min_cosine`, `mean_cosine`, `neighbours_preserved`, per-probe `cosines`) or its `error`.",
    )
    seconds_per_window: dict[str, float] | None = Field(
        default=None, description="auto: the measured seconds per 10 s window of each candidate runtime."
    )
    measured_on: dict[str, Any] | None = Field(
        default=None, description="auto: the CPU, thread count and time of that measurement."
    )
    prepared_now: bool | None = Field(
        default=None, description="Whether this start exported or verified files (false: all from the cache)."
    )
    cache_dir: str | None = Field(default=None, description="Where the exported files are kept.")


class WorkerOut(BaseModel):
    id: str
    state: str = Field(description="`loading`, `idle`, `working` or `error`.")
    model: str | None
    last_batch_at: datetime | None
    last_error: str | None
    tracks_done: int
    heartbeat_at: datetime
    download: DownloadOut | None = Field(
        default=None, description="While `loading`: the model download's progress, once the hub reported it."
    )
    next_retry_at: datetime | None = Field(
        default=None, description="In `error` after a failed load: when the worker tries to load again."
    )
    embedding_runtime: EmbeddingRuntimeOut | None = Field(
        default=None, description="Once the model is loaded: the audio tower's runtime and why."
    )


class WorkerSummary(BaseModel):
    enabled: bool
    state: WorkerState = Field(
        description="Aggregate over live workers, the busiest first: working > loading > idle > error. "
        "A load (the first start downloads the model) is activity that ends by itself, like a batch; "
        "a worker at rest with its model counts before one that failed to load. `workers` lists each."
    )
    model: str
    last_batch_at: datetime | None
    last_error: str | None
    text_tower_ok: bool | None
    text_tower_note: str | None
    download: DownloadOut | None = Field(
        default=None,
        description="A loading worker's model download from the Hugging Face hub: bytes done of total "
        "(null when no worker is downloading, or before the hub reported sizes).",
    )
    next_retry_at: datetime | None = Field(
        default=None, description="When a worker that failed to load its model tries again (the soonest)."
    )
    embedding_runtime: EmbeddingRuntimeOut | None = Field(
        default=None,
        description="The audio tower's runtime in use (of the first worker with its model loaded) and why.",
    )
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
