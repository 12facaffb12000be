"""What the tools answer: short documents a model reads (the full API documents stay in /api/*)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from haunt_fm.pipeline.feedback.schemas import FeedbackSaved
from haunt_fm.pipeline.imports.schemas import ImportProgress, ImportSource, ImportStatus
from haunt_fm.pipeline.listens.schemas import ListenSource
from haunt_fm.pipeline.playlists.schemas import PlaybackOut
from haunt_fm.pipeline.radio.schemas import EndedReason, RadioPlaybackOut, StopPlaybackOut
from haunt_fm.pipeline.recommendations.schemas import BecauseOut, TasteShare
from haunt_fm.pipeline.status.schemas import (
    DiscoveryStatus,
    PipelineCounts,
    ProfileStatus,
    TagsStatus,
    WorkerState,
)
from haunt_fm.pipeline.tags.schemas import VibeBasis


class RecommendedTrack(BaseModel):
    track_id: int = Field(description="Pass it to give_feedback to rate the track.")
    title: str
    artist: str
    album: str | None
    score: float = Field(description="Similarity to what was asked for, 0..1 (higher is closer).")
    why: str | None = Field(description="The listened tracks that led to it, in words; null when none did.")
    taste: str | None = Field(
        description="The label of the person's taste that found it (see `tastes`); null for a vibe-only "
        "query."
    )


class Recommendations(BaseModel):
    profile: str
    vibe: str | None
    alpha: float
    basis: Literal["taste", "vibe", "taste+vibe"] = Field(
        description="What the tracks were chosen by: the profile's taste, the vibe, or both."
    )
    vibe_basis: VibeBasis | None = Field(
        description="How the vibe was understood (Last.fm tags it matched, whether CLAP text joined); "
        "null without a vibe."
    )
    tastes: list[TasteShare] = Field(
        description="The person's tastes searched (a person can have several: e.g. jazz and metal), heaviest "
        "first; the tracks take turns between them, so `score` falls within each taste, not overall."
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
    vibe_basis: VibeBasis | None = Field(description="How the vibe was understood; null without a vibe.")
    known_count: int
    new_count: int
    tracks: list[PlaylistTrack]
    playback: PlaybackOut = Field(description="What Home Assistant / Music Assistant did with it.")
    warnings: list[str]


class FeedbackGiven(FeedbackSaved):
    found_by: str = Field(description="How the track was found: by id, playing on a speaker, or last played.")


class Listen(BaseModel):
    track_id: int = Field(description="Pass it to give_feedback to rate the track.")
    title: str
    artist: str
    album: str | None
    profile: str = Field(description="Whose listen it is.")
    speaker: str | None = Field(description="The speaker's name as reported (or its entity id).")
    played_at: datetime
    skipped: bool = Field(
        description="Cut short: the next track on that speaker started within min(30 s, half its length). "
        "Skips don't count toward the person's taste."
    )
    source: ListenSource = Field(
        description="`webhook` (live from Home Assistant), `ha_history` (recovered from Home Assistant's "
        "history), `lastfm` or `listenbrainz` (an imported history)."
    )


class Listens(BaseModel):
    profile: str | None
    speaker: str | None
    events: list[Listen]


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


class WorkerBrief(BaseModel):
    enabled: bool
    state: WorkerState
    model: str
    last_batch_at: datetime | None
    last_error: str | None
    text_tower_ok: bool | None = Field(
        description="The model's text tower passed its self-test (vibes may use CLAP text); null: not "
        "checked."
    )
    live_workers: int


class HomeAssistantBrief(BaseModel):
    configured: bool
    last_reconciled_at: datetime | None = Field(
        description="When Home Assistant's history was last read for listens the webhook missed."
    )
    listens_recovered: int | None
    last_error: str | None


class ImportBrief(BaseModel):
    import_id: int
    source: ImportSource
    profile: str
    status: ImportStatus
    imported: int
    duplicates: int
    skipped: int
    progress: ImportProgress
    error: str | None
    finished_at: datetime | None


class ImportsBrief(BaseModel):
    running: list[ImportBrief]
    last_finished: ImportBrief | None


class StatusBrief(BaseModel):
    """/api/status without the per-worker rows, import problems and reconciliation details."""

    version: str
    pipeline: PipelineCounts = Field(
        description="Counts: listens, tracks, candidates; previews found; embeddings done/pending "
        "(`outdated`: re-embedding left after a model switch); Last.fm tags fetched/pending."
    )
    worker: WorkerBrief
    discovery: DiscoveryStatus
    tags: TagsStatus
    home_assistant: HomeAssistantBrief
    imports: ImportsBrief = Field(
        description="History imports (Last.fm, ListenBrainz) running and the last one."
    )
    profiles: list[ProfileStatus]
    feedback: int


class RadioStartedOut(BaseModel):
    radio_id: int
    profile: str
    speaker: str = Field(description="The speaker's name.")
    speaker_entity: str
    vibe: str | None
    alpha: float
    known_pct: float
    batch: int
    queued: list[PlaylistTrack] = Field(
        description="The first batch, in play order; more follow as they play."
    )
    first_playback: PlaybackOut = Field(
        description="What Home Assistant / Music Assistant did with the first batch."
    )
    playback: RadioPlaybackOut = Field(
        description="`ok`, or `retrying` with Home Assistant's error and the next try (the radio keeps "
        "trying)."
    )
    warnings: list[str]


class RadioStoppedOut(BaseModel):
    radio_id: int
    profile: str
    speaker: str = Field(description="The speaker's name.")
    speaker_entity: str
    vibe: str | None
    started_at: datetime
    ended_reason: EndedReason | None
    played: int = Field(description="Tracks heard and not skipped.")
    skipped: int
    stop_playback: StopPlaybackOut = Field(
        description="Whether the player itself was stopped (when asked); if not, the tracks already in the "
        "speaker's queue play on."
    )


def why(because: list[BecauseOut]) -> str | None:
    """The recommendation's reason in words: the listened tracks Last.fm linked it to."""
    if not because:
        return None
    tracks = [f"'{b.title}' by {b.artist}" for b in because]
    listed = tracks[0] if len(tracks) == 1 else ", ".join(tracks[:-1]) + " and " + tracks[-1]
    return f"Last.fm lists it as similar to {listed}."
