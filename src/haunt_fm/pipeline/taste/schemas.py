"""Taste-profile responses."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from haunt_fm.pipeline.profiles.schemas import ProfileTasteOut


class TasteBuilt(BaseModel):
    profile: str
    tracks_used: int = Field(description="Embedded listened or liked tracks that went into the profile.")
    built_at: datetime
    tastes: list[ProfileTasteOut] = Field(
        default_factory=list, description="The profile's tastes (1..6), heaviest first."
    )
