"""What the tools answer: short documents a model reads (the full API documents stay in /api/*)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from haunt_fm.pipeline.feedback.schemas import FeedbackSaved
from haunt_fm.pipeline.listens.schemas import ListenOut
from haunt_fm.pipeline.playlists.schemas import PlaybackOut
from haunt_fm.pipeline.recommendations.schemas import BecauseOut


class RecommendedTrack(BaseModel):
    track_id: int = Field(description="Pass it to give_feedback to rate the track.")
    title: str
    artist: str
    album: str | None
    score: float = Field(description="Similarity to what was asked for, 0..1 (higher is closer).")
    why: str | None = Field(description="The listened tracks that led to it, in words; null when none did.")


class Recommendations(BaseModel):
    profile: str
    vibe: str | None
    alpha: float
    basis: Literal["taste", "vibe", "taste+vibe"] = Field(
        description="What the tracks were chosen by: the profile's taste, the vibe, or both."
    )
    tracks: list[RecommendedTrack]


class PlaylistTrack(BaseModel):
    position: int
    track_id: int
    title: str
    artist: str
    kind: Literal["known", "new"] = Field(description="`known`: a favourite; `new`: a discovery.")


class PlayedPlaylist(BaseModel):
    playlist_id: int
    profile: str
    speaker: str = Field(description="The speaker's name.")
    speaker_entity: str
    vibe: str | None
    known_count: int
    new_count: int
    tracks: list[PlaylistTrack]
    playback: PlaybackOut = Field(description="What Home Assistant / Music Assistant did with it.")
    warnings: list[str]


class FeedbackGiven(FeedbackSaved):
    found_by: str = Field(description="How the track was found: by id, playing on a speaker, or last played.")


class Listens(BaseModel):
    profile: str | None
    speaker: str | None
    events: list[ListenOut]


class SpeakerOut(BaseModel):
    name: str
    entity_id: str | None = Field(description="The Home Assistant entity to play on; null when unknown.")
    music_assistant: bool = Field(description="Home Assistant lists it as a Music Assistant player.")
    state: str | None = Field(
        description="Home Assistant's state (playing, idle, off, ...); null when unknown."
    )
    now_playing: str | None
    profile: str | None = Field(description="The profile its listens are attributed to (speaker mapping).")
    also_known_as: list[str]
    sources: list[str] = Field(description="Where haunt-fm knows it from: home_assistant, mapping, listens.")


class Speakers(BaseModel):
    speakers: list[SpeakerOut]
    home_assistant: str = Field(description="`ok`, or why Home Assistant's players are missing.")


def why(because: list[BecauseOut]) -> str | None:
    """The recommendation's reason in words: the listened tracks Last.fm linked it to."""
    if not because:
        return None
    tracks = [f"'{b.title}' by {b.artist}" for b in because]
    listed = tracks[0] if len(tracks) == 1 else ", ".join(tracks[:-1]) + " and " + tracks[-1]
    return f"Last.fm lists it as similar to {listed}."
