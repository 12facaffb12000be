"""Radio request and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from haunt_fm.pipeline.playlists.schemas import (
    SPEAKER_ENTITY_PATTERN,
    PlaybackOut,
    PlaylistTrackOut,
    clean_speaker_entity,
    optional_profile,
    optional_vibe,
)

MIN_BATCH, MAX_BATCH, DEFAULT_BATCH = 3, 50, 10

EndedReason = Literal["stopped", "replaced", "outside", "silent", "exhausted", "failed"]
TrackState = Literal["playing", "played", "skipped", "upcoming", "missed", "failed"]


def clean_speaker(value: str) -> str:
    """A Music Assistant player entity id, lowercased; ValueError otherwise."""
    checked = clean_speaker_entity(value)
    if checked is None:
        raise ValueError("speaker_entity is required: the Music Assistant player to play on")
    return checked


class RadioIn(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "example": {
                "speaker_entity": "media_player.study_speaker_2",
                "profile": None,
                "vibe": None,
                "alpha": 0.5,
                "known_pct": 20,
                "batch": 10,
            }
        },
    )

    speaker_entity: Annotated[str, AfterValidator(clean_speaker)] = Field(
        max_length=300,
        json_schema_extra={"pattern": SPEAKER_ENTITY_PATTERN},
        description="Music Assistant player, e.g. `media_player.study_speaker_2` (the `_2` entity).",
    )
    profile: Annotated[str | None, AfterValidator(optional_profile)] = Field(
        default=None,
        max_length=64,
        description="Whose taste; default: the profile mapped to the speaker, else `default`.",
    )
    vibe: Annotated[str | None, AfterValidator(optional_vibe)] = Field(
        default=None, max_length=1000, description="Mood text, e.g. `chill ambient` (at most 200 characters)."
    )
    alpha: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Taste weight against the vibe, 0..1 (ignored without vibe)."
    )
    known_pct: float = Field(
        default=20, ge=0, le=100, description="Share of known favourites in each batch, 0..100."
    )
    batch: int = Field(
        default=DEFAULT_BATCH,
        ge=MIN_BATCH,
        le=MAX_BATCH,
        description="Tracks queued at a time, 3..50; the next batch follows when one of the last 3 plays.",
    )


class RadioTrackOut(PlaylistTrackOut):
    batch: int = Field(description="Which batch queued it (1 = the first).")
    state: TrackState = Field(
        description=(
            "`playing` (heard last), `played`, `skipped` (the next track started within min(30 s, half "
            "its length)), `upcoming`, `missed` (passed over unheard) or `failed` (Music Assistant could "
            "not find it)."
        )
    )
    sent: bool = Field(description="Music Assistant accepted it into the speaker's queue.")
    queued_at: datetime
    played_at: datetime | None = Field(description="When it was heard on the speaker.")
    disliked: bool = Field(
        default=False, description="The radio's profile thumbed it down while the radio played."
    )


class RadioPlaybackOut(BaseModel):
    status: Literal["ok", "retrying", "ended"] = Field(
        description=(
            "`ok`: every track so far went to the speaker; `retrying`: Home Assistant failed to queue "
            "some, tried again at `next_retry_at`; `ended`: the radio no longer queues anything."
        )
    )
    last_error: str | None = Field(default=None, description="Home Assistant's last failure, in words.")
    attempts: int = Field(default=0, description="Failed attempts in a row.")
    next_retry_at: datetime | None = None


class SteerOut(BaseModel):
    beta: float = Field(description="query = normalise(q - beta x mean(turned-down tracks)).")
    turned_down: int = Field(description="Tracks skipped or thumbed down during the radio.")
    avoided_artists: list[str] = Field(description="Artists never queued again in this radio (normalised).")


class RadioOut(BaseModel):
    radio_id: int
    speaker_entity: str
    profile: str
    vibe: str | None
    alpha: float
    known_pct: float
    batch: int
    active: bool
    started_at: datetime
    ended_at: datetime | None = None
    ended_reason: EndedReason | None = Field(
        default=None,
        description=(
            "`stopped`, `replaced` (another radio started on the speaker), `outside` (the speaker played "
            "a track the radio didn't queue), `silent` (nothing from it heard for longer than its queued "
            "tracks could last), `exhausted` (nothing left to queue) or `failed` (Home Assistant kept "
            "failing)."
        ),
    )
    ended_detail: str | None = Field(default=None, description="Why it ended, in words.")
    last_heard_at: datetime | None = None
    now_playing: RadioTrackOut | None = None
    played: list[RadioTrackOut] = Field(default_factory=list, description="Heard and not skipped.")
    skipped: list[RadioTrackOut] = Field(default_factory=list)
    upcoming: list[RadioTrackOut] = Field(
        default_factory=list, description="Queued, not heard yet, in order."
    )
    failed: list[RadioTrackOut] = Field(
        default_factory=list, description="Music Assistant could not find them."
    )
    steer: SteerOut
    playback: RadioPlaybackOut


class RadioStarted(RadioOut):
    queued: list[PlaylistTrackOut] = Field(description="The first batch, in play order.")
    first_playback: PlaybackOut = Field(description="What Home Assistant said to the first batch.")
    warnings: list[str] = Field(default_factory=list)


class SpeakerOut(BaseModel):
    speaker_entity: str
    speaker_name: str | None = Field(description="As the webhook last reported it.")
    profile: str | None = Field(description="The profile mapped to the speaker (by name or entity).")
    last_listen_at: datetime | None
    radio_id: int | None = Field(description="The active radio on it, if any.")


class RadioList(BaseModel):
    radios: list[RadioOut] = Field(description="Active radios first, then those ended in the last 24 hours.")
    speakers: list[SpeakerOut] = Field(
        description="Players a radio can start on: seen in the last 30 days' listens, mapped, or playing one."
    )


class StopPlaybackOut(BaseModel):
    requested: bool
    status: Literal["stopped", "failed", "not_requested"]
    error: str | None = None


class RadioStopped(RadioOut):
    stop_playback: StopPlaybackOut
