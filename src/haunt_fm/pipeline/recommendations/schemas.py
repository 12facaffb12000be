"""Recommendation responses."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from haunt_fm.pipeline.tags.schemas import VibeBasis


class BecauseOut(BaseModel):
    """A listened track whose Last.fm neighbours led discovery to the recommended one."""

    track_id: int
    title: str
    artist: str
    match: float = Field(description="Last.fm match score of the seed -> candidate edge (0..1).")


class TasteRef(BaseModel):
    """Which of the profile's tastes found a recommendation."""

    index: int = Field(description="The taste's index (0 = the profile's heaviest taste).")
    label: str = Field(description="The taste's label: its top tags, or else its top artists.")


class TasteShare(TasteRef):
    weight: float = Field(description="The taste's share of the list (its share of the listening).")


class RecommendationOut(BaseModel):
    track_id: int
    title: str
    artist: str
    album: str | None
    score: float = Field(description="Cosine similarity to the query vector (1 - cosine distance).")
    preview_url: str | None
    artwork_url: str | None = None
    genre: str | None = None
    because: list[BecauseOut] = Field(
        default_factory=list,
        description="The profile's listened tracks that led to it (other profiles' when it has none).",
    )
    taste: TasteRef | None = Field(
        default=None,
        description="The profile's taste that found it (`score` is the cosine to that taste's query); "
        "null for a vibe-only query.",
    )


class RecommendationsOut(BaseModel):
    profile: str
    vibe: str | None = Field(description="The vibe as given (trimmed); null without one.")
    alpha: float
    basis: Literal["taste", "vibe", "taste+vibe"] = Field(
        description="What the query vector was made of: the taste profile, the vibe, or a blend."
    )
    vibe_basis: VibeBasis | None = Field(
        default=None, description="How the vibe was understood (present whenever a vibe was given)."
    )
    taste_built_at: datetime | None = None
    tastes: list[TasteShare] = Field(
        default_factory=list,
        description="The tastes searched, heaviest first; each gets this share of the list, interleaved.",
    )
    recommendations: list[RecommendationOut]


class VibeNotUnderstoodOut(BaseModel):
    """409 when a vibe can't steer: no tag of an embedded track matched and the text tower can't be used."""

    detail: str = Field(description="What was understood, why it can't steer, and whether discovery started.")
    error: Literal["vibe_not_understood"]
    suggestions: list[str] = Field(description="The library's most common tags (of embedded tracks).")
