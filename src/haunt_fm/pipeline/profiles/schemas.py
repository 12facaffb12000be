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


class ProfileTasteOut(BaseModel):
    """One of the profile's tastes: a cluster of what it listens to (built with its taste profile)."""

    index: int = Field(description="0 = the heaviest taste.")
    label: str = Field(description="Its top tags when tags are known, else its top artists.")
    weight: float = Field(description="Its share of the profile's listening (the shares sum to 1).")
    tracks: int = Field(description="Embedded listened or liked tracks in it.")
    top_artists: list[str] = Field(description="Its heaviest artists, at most three.")


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
    tastes: list[ProfileTasteOut] = Field(
        default_factory=list,
        description="The tastes of the last build, heaviest first (empty before the first build). "
        "Recommendations and playlists rebuild a stale profile before use.",
    )


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
