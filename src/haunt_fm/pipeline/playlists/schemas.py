"""Playlist request and answers."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from haunt_fm.pipeline.tags.schemas import VibeBasis
from haunt_fm.pipeline.vibes import VIBE_MAX_CHARS, clean_vibe

MAX_TRACKS = 200
MAX_ID = 2**63 - 1
# Home Assistant entity ids are lowercase `domain.object_id`; only media players can play.
_SPEAKER_RE = re.compile(r"^media_player\.[a-z0-9_]{1,250}$")
# The same rule for the schema, as the validator reads it: trimmed, any case.
SPEAKER_ENTITY_PATTERN = r"^\s*[Mm][Ee][Dd][Ii][Aa]_[Pp][Ll][Aa][Yy][Ee][Rr]\.[A-Za-z0-9_]{1,250}\s*$"

Kind = Literal["known", "new"]
PlaybackStatus = Literal["played", "partial", "failed", "not_requested"]


def optional_vibe(value: str | None) -> str | None:
    """A vibe as given, cleaned (None when blank); ValueError when it is not one."""
    if value is None or not value.strip():
        return None
    return clean_vibe(value)


def optional_profile(value: str | None) -> str | None:
    """A profile name trimmed (None when blank: the default profile)."""
    return value.strip() or None if value is not None else None


def clean_speaker_entity(value: str | None) -> str | None:
    """A media player entity id, trimmed and lowercased (None when blank); ValueError otherwise."""
    if value is None or not value.strip():
        return None
    value = value.strip().lower()
    if not _SPEAKER_RE.match(value):
        raise ValueError(
            "speaker_entity must be a Home Assistant media player entity id such as "
            "media_player.study_speaker_2"
        )
    return value


class PlaylistIn(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "example": {
                "total_tracks": 20,
                "known_pct": 30,
                "profile": "default",
                "vibe": None,
                "alpha": 0.5,
                "speaker_entity": "media_player.study_speaker_2",
                "auto_play": True,
            },
            # auto_play needs a player to play on.
            "if": {"properties": {"auto_play": {"const": True}}, "required": ["auto_play"]},
            "then": {
                "required": ["speaker_entity"],
                "properties": {"speaker_entity": {"type": "string", "pattern": SPEAKER_ENTITY_PATTERN}},
            },
        },
    )

    total_tracks: int = Field(default=20, ge=1, le=MAX_TRACKS, description="Tracks in the playlist, 1..200.")
    known_pct: float = Field(
        default=30, ge=0, le=100, description="Share of known favourites (the rest are discoveries), 0..100."
    )
    profile: str | None = Field(default=None, max_length=64, description="Profile name; default `default`.")
    vibe: str | None = Field(
        default=None,
        max_length=VIBE_MAX_CHARS,
        description="Mood text, e.g. `chill ambient lo-fi` (at most 200 characters); empty = none.",
    )
    alpha: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Taste weight against the vibe, 0..1 (ignored without vibe)."
    )
    speaker_entity: str | None = Field(
        default=None,
        max_length=300,
        # Blank reads as none.
        json_schema_extra={"pattern": SPEAKER_ENTITY_PATTERN + r"|^\s*$"},
        description="Music Assistant player, e.g. `media_player.study_speaker_2` (the `_2` entity).",
    )
    auto_play: bool = Field(default=False, description="Play it on `speaker_entity` now (needs it).")

    @field_validator("vibe")
    @classmethod
    def _vibe(cls, value: str | None) -> str | None:
        return optional_vibe(value)

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: str | None) -> str | None:
        return optional_profile(value)

    @field_validator("speaker_entity")
    @classmethod
    def _speaker(cls, value: str | None) -> str | None:
        return clean_speaker_entity(value)

    @model_validator(mode="after")
    def _auto_play_needs_speaker(self) -> Self:
        if self.auto_play and self.speaker_entity is None:
            raise ValueError("auto_play needs speaker_entity: name the Music Assistant player to play on")
        return self


class PlaylistTrackOut(BaseModel):
    position: int
    track_id: int
    title: str
    artist: str
    album: str | None = None
    kind: Kind = Field(description="`known`: a favourite of the profile; `new`: a recommendation.")
    score: float | None = Field(
        description=(
            "`new`: cosine similarity to the query vector. `known`: with a vibe, cosine similarity to "
            "the vibe (null when the track has no embedding yet); otherwise its play count x recency "
            "weight relative to the profile's most played track (liked tracks count as 1)."
        )
    )


class PlaybackFailure(BaseModel):
    position: int
    track_id: int
    title: str
    artist: str
    reason: str


class PlaybackOut(BaseModel):
    requested: bool
    speaker_entity: str | None
    status: PlaybackStatus = Field(
        description=(
            "`played`: every track queued; `partial`: some could not be; `failed`: none was (see "
            "`error`); `not_requested`: auto_play was false."
        )
    )
    queued: int = Field(description="Tracks Music Assistant accepted, in playlist order.")
    failed: list[PlaybackFailure] = Field(
        default_factory=list, description="Tracks Home Assistant was asked to play and could not."
    )
    error: str | None = Field(default=None, description="What went wrong, in words; null when all played.")
    warnings: list[str] = Field(default_factory=list)


class PlaylistOut(BaseModel):
    playlist_id: int
    profile: str
    created_at: datetime
    vibe: str | None
    alpha: float
    vibe_basis: VibeBasis | None = Field(
        default=None, description="How the vibe was understood (present whenever a vibe was given)."
    )
    total_tracks: int = Field(description="Tracks asked for; `tracks` may be shorter when too few qualify.")
    known_pct: float
    known_count: int
    new_count: int
    tracks: list[PlaylistTrackOut]
    playback: PlaybackOut
    warnings: list[str] = Field(default_factory=list, description="Things worth knowing, in words.")


class PlaylistSummary(BaseModel):
    playlist_id: int
    profile: str
    created_at: datetime
    vibe: str | None
    alpha: float | None
    track_count: int
    known_count: int
    new_count: int
    speaker_entity: str | None
    playback_status: PlaybackStatus | None


class PlaylistList(BaseModel):
    playlists: list[PlaylistSummary]
