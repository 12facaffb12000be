"""Taste-profile responses."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TasteBuilt(BaseModel):
    profile: str
    tracks_used: int = Field(description="Embedded listened or liked tracks that went into the profile.")
    built_at: datetime
