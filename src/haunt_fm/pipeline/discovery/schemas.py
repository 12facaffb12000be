"""Discovery request and answer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DiscoverIn(BaseModel):
    """What to expand: `limit` similar tracks per listened track, for one profile or all."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"example": {"limit": 50, "profile": None, "max_seeds": None, "force": False}},
    )

    limit: int = Field(default=50, ge=1, le=500, description="Similar tracks asked for per seed, 1..500.")
    profile: str | None = Field(
        default=None, max_length=64, description="Only this profile's listened tracks; all when null."
    )
    max_seeds: int | None = Field(
        default=None, ge=1, description="Expand at most this many seeds now (the rest wait for a later run)."
    )
    force: bool = Field(
        default=False,
        description="Expand seeds again even when they were expanded within HAUNTFM_DISCOVERY_REEXPAND_DAYS.",
    )


class SeedError(BaseModel):
    track_id: int
    artist: str
    title: str
    error: str


class DiscoverOut(BaseModel):
    """Counts of one discovery run."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "seeds": 9,
                "candidates_new": 311,
                "candidates_seen": 58,
                "preview_lookups_queued": 311,
                "seeds_skipped": 2,
                "seeds_remaining": 0,
                "seeds_failed": 0,
                "seeds_without_similar": 1,
                "edges": 400,
                "errors": [],
                "elapsed_s": 2.1,
            }
        }
    )

    seeds: int = Field(description="Listened tracks expanded in this run.")
    candidates_new: int = Field(description="Tracks this run added to the pool.")
    candidates_seen: int = Field(description="Similar tracks that were already known (distinct).")
    preview_lookups_queued: int = Field(description="New tracks queued for the iTunes preview lookup.")
    seeds_skipped: int = Field(
        default=0, description="Listened tracks not due (expanded recently) or taken by a concurrent run."
    )
    seeds_remaining: int = Field(
        default=0, description="Due seeds left for a later run (max_seeds, or a stop)."
    )
    seeds_failed: int = Field(
        default=0, description="Seeds Last.fm failed on; they are tried again next run."
    )
    seeds_without_similar: int = Field(default=0, description="Seeds Last.fm knows no similar tracks for.")
    edges: int = Field(default=0, description="Seed -> candidate edges written (new or updated).")
    errors: list[SeedError] = Field(default_factory=list)
    elapsed_s: float = 0.0
