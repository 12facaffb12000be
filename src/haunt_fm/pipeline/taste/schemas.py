"""Taste-profile responses."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TasteOut(BaseModel):
    """One of a profile's tastes (without its vector)."""

    index: int = Field(description="0 = the heaviest taste.")
    label: str = Field(description="Its top tags when tags are known, else its top artists.")
    weight: float = Field(description="Its share of the profile's listening weight (the shares sum to 1).")
    tracks: int = Field(description="Embedded listened or liked tracks in it.")


class TasteBuilt(BaseModel):
    profile: str
    tracks_used: int = Field(description="Embedded listened or liked tracks that went into the profile.")
    built_at: datetime
    tastes: list[TasteOut] = Field(
        default_factory=list, description="The profile's tastes (1..6), heaviest first."
    )
