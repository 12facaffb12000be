"""Webhook and history bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from haunt_fm.pipeline.common import NonBlankStr, OptionalStr


class ListenIn(BaseModel):
    """One listen, as the Home Assistant automation reports it."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "example": {
                "title": "Paranoid Android",
                "artist": "Radiohead",
                "album": "OK Computer",
                "speaker_name": "Study speaker",
                "speaker_entity": "media_player.study_speaker_2",
                "profile": "antialias",
                "played_at": "2026-11-20T21:04:00+00:00",
                "media_content_id": "applemusic://track/1097861387",
                "duration_s": 383,
            }
        },
    )

    title: NonBlankStr = Field(max_length=1000)
    artist: NonBlankStr = Field(max_length=1000)
    album: OptionalStr = Field(default=None, max_length=1000)
    speaker_name: OptionalStr = Field(default=None, max_length=500)
    speaker_entity: OptionalStr = Field(default=None, max_length=500)
    profile: OptionalStr = Field(default=None, max_length=200)
    played_at: datetime | None = Field(
        default=None, description="When it started playing (ISO-8601; naive = UTC). Default: now."
    )
    media_content_id: OptionalStr = Field(default=None, max_length=2000)
    duration_s: int | None = Field(default=None, ge=0, le=86_400)

    @field_validator("played_at")
    @classmethod
    def _sane_time(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.year < 1970 or value.year > 2200:
            raise ValueError("played_at must be a real date between 1970 and 2200")
        return value


class ListenLogged(BaseModel):
    status: Literal["logged", "duplicate"]
    event_id: int
    track_id: int
    profile: str
    note: str | None = Field(default=None, description="Why the listen went to another profile, if it did.")


class ListenOut(BaseModel):
    event_id: int
    track_id: int
    title: str
    artist: str
    album: str | None
    profile: str
    speaker_name: str | None
    speaker_entity: str | None
    played_at: datetime
    media_content_id: str | None = None
    duration_s: int | None = None
    source: Literal["webhook", "ha_history", "lastfm", "listenbrainz"] = Field(
        description="Where the listen came from: the webhook, Home Assistant's history, or an import."
    )


class RecentListens(BaseModel):
    events: list[ListenOut]


class TrackRef(BaseModel):
    """A stored track, as a listen or a rating names it."""

    track_id: int
    title: str
    artist: str
    album: str | None = None


class SpeakerHeard(BaseModel):
    """A speaker listens were reported from, as the webhook (or history) named it."""

    speaker_name: str | None
    speaker_entity: str | None
    last_played_at: datetime
