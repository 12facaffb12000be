"""Request and response bodies for /api/profiles."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from haunt_fm.pipeline.common import NonBlankStr, OptionalStr, ProfileName


class ProfileCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ProfileName = Field(description="Lowercase id, `^[a-z0-9][a-z0-9_-]{0,63}$`.")
    display_name: OptionalStr = Field(default=None, max_length=200)


class SpeakersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speakers: list[NonBlankStr] = Field(
        max_length=200,
        description="Speaker names or entity ids (matched case-insensitively); replaces the mapping.",
    )


class ProfileOut(BaseModel):
    name: str
    display_name: str | None
    listens: int
    tracks: int
    feedback: int
    speakers: list[str]
    taste_built_at: datetime | None
    taste_tracks_used: int | None = None
    taste_stale: bool = False
    created_at: datetime


class ProfileList(BaseModel):
    profiles: list[ProfileOut]


class SpeakersOut(BaseModel):
    profile: str
    speakers: list[str]


class ProfileDeleted(BaseModel):
    status: str = "deleted"
    profile: str
    listens_moved: int
    feedback_moved: int
