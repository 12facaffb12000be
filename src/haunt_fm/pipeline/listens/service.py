"""Listening history: log what Home Assistant reports, attribute it to the right person.

Home Assistant reports every start and track change of a player; this service decides what
a person would count as one listen, from each speaker's own sequence (repository._LOG_SQL):
a report of the track the speaker is already playing, within the track's length plus
RESUME_SLACK (UNKNOWN_LENGTH_WINDOW when the length is unknown), is a resume; a member of a
group player playing the group's track is the group's listen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from haunt_fm import queue
from haunt_fm.errors import Unavailable
from haunt_fm.pipeline.common import PROFILE_NAME_RE, as_utc
from haunt_fm.pipeline.listens import repository as repo
from haunt_fm.pipeline.listens.schemas import (
    MAX_DURATION_S,
    ListenIn,
    ListenLogged,
    ListenOut,
    ListenSource,
    ListenStatus,
    SpeakerHeard,
    TrackRef,
)
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.pipeline.profiles.repository import speaker_key
from haunt_fm.pipeline.tracks.identity import identity_params

RESUME_SLACK = timedelta(minutes=2)
UNKNOWN_LENGTH_WINDOW = timedelta(minutes=10)
# Attempts of the one statement: a concurrent change to the same track's listens (a group and
# its members reporting at once) or a profile deleted meanwhile makes an attempt write nothing.
LOG_ATTEMPTS = 8


def listen_speaker_key(listen: ListenIn) -> str | None:
    """The speaker a listen played on: its entity id, else its name (normalised)."""
    speaker = listen.speaker_entity or listen.speaker_name
    return speaker_key(speaker) if speaker else None


def _params(listen: ListenIn, *, source: ListenSource) -> dict[str, Any]:
    key = listen_speaker_key(listen)
    members: list[str] = []
    if key is not None:
        # A player that lists other players is their group; itself may be listed too.
        for member in listen.group_members or []:
            member_key = speaker_key(member)
            if member_key != key and member_key not in members:
                members.append(member_key)
    return {
        "title": listen.title,
        "artist": listen.artist,
        "album": listen.album,
        "profile": listen.profile,
        "speaker_name": listen.speaker_name,
        "speaker_entity": listen.speaker_entity,
        "speaker_name_key": speaker_key(listen.speaker_name) if listen.speaker_name else None,
        "speaker_entity_key": speaker_key(listen.speaker_entity) if listen.speaker_entity else None,
        "speaker_key": key,
        # Our clock when the report has no time: one value the whole statement can use in
        # index conditions.
        "t": as_utc(listen.played_at) if listen.played_at else datetime.now(UTC),
        "media_content_id": listen.media_content_id,
        "duration_s": listen.duration_s,
        "source": source,
        "members": members,
        "group_report": key is not None and listen.group_members is not None,
        "slack_s": int(RESUME_SLACK.total_seconds()),
        "unknown_s": int(UNKNOWN_LENGTH_WINDOW.total_seconds()),
        "max_window_s": MAX_DURATION_S + int(max(RESUME_SLACK, UNKNOWN_LENGTH_WINDOW).total_seconds()),
        **identity_params(title=listen.title, artist=listen.artist),
    }


async def log_listen(
    conn: AsyncConnection, *, listen: ListenIn, source: ListenSource = "webhook"
) -> ListenLogged:
    """Store a listen, or say which stored listen it belongs to (duplicate, resumed, grouped).

    `conn` runs in autocommit: each attempt is one atomic statement.
    """
    params = _params(listen, source=source)
    group = bool(params["members"])
    for attempt in range(1, LOG_ATTEMPTS + 1):
        try:
            row = await repo.log_listen(conn, params, group=group)
        except IntegrityError:
            # The listen's profile was deleted while it arrived: try again, it then goes
            # where it now belongs.
            if attempt == LOG_ATTEMPTS:
                raise
            continue
        if row["status"] == "regroup":
            group = True  # a known group that now lists no members: forget them
            continue
        if row["status"] == "stale" or row["event_id"] is None:
            continue
        return ListenLogged(
            status=cast(ListenStatus, row["status"]),
            event_id=row["event_id"],
            track_id=row["track_id"],
            profile=row["profile_name"],
            note=_note(listen, resolved=row["resolved_profile"], status=row["status"]),
        )
    raise Unavailable(
        "The listen could not be stored while its track or profile kept changing; send it again."
    )


def _note(listen: ListenIn, *, resolved: str, status: str) -> str | None:
    notes = []
    wanted = listen.profile
    if wanted is not None and wanted != resolved and status in ("logged", "duplicate"):
        # Never drop a listen over a profile problem: log it and say where it went.
        why = "is not a valid profile name" if not PROFILE_NAME_RE.match(wanted) else "does not exist"
        notes.append(f"Profile '{wanted}' {why}; the listen was logged to '{resolved}'.")
    notes.extend(listen.ignored)
    return " ".join(notes) or None


async def recent(
    session: AsyncSession, *, profile: str | None, limit: int, speakers: Sequence[str] | None = None
) -> list[ListenOut]:
    """Newest listens first; all profiles unless one is named, all speakers unless some are."""
    profile_id = None
    if profile:
        profile_id = (await profiles.require(session, name=profile)).id
    keys = None if speakers is None else sorted({s.strip().lower() for s in speakers})
    return [
        ListenOut.model_validate(dict(r))
        for r in await repo.recent(session, profile_id=profile_id, limit=limit, speakers=keys)
    ]


async def find_track(session: AsyncSession, *, title: str, artist: str) -> TrackRef | None:
    """The stored track that is this title and artist by the identity rule, or None."""
    row = await repo.track_by_key(session, norm_key=identity_params(title=title, artist=artist)["norm_key"])
    return None if row is None else TrackRef.model_validate(dict(row))


# How far back (in listens) to look for the speakers music was heard on.
SPEAKERS_HEARD_WINDOW = 5000


async def speakers_heard(session: AsyncSession) -> list[SpeakerHeard]:
    """The speakers recent listens were reported from (name and entity as sent), newest first."""
    rows = await repo.speakers_heard(session, window=SPEAKERS_HEARD_WINDOW)
    return [SpeakerHeard.model_validate(dict(r)) for r in rows]


# --- Batches of listens (history imports) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewListen:
    """A listen from another service's history, already validated (names are non-blank, storable)."""

    title: str
    artist: str
    album: str | None
    played_at: datetime
    duration_s: int | None = None


@dataclass(frozen=True, slots=True)
class ListenBatch:
    """Listens as column arrays, with their tracks' identities worked out (see `prepare_batch`)."""

    tracks: dict[str, list[Any]]
    listens: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.listens["norm_key"])


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """What became of a batch: stored, or duplicates of listens already stored (60-second rule)."""

    inserted: int
    duplicates: int
    new_tracks: int


# Histories repeat their favourites: most names were normalised a moment ago.
_identity = lru_cache(maxsize=16_384)(lambda title, artist: identity_params(title=title, artist=artist))


def prepare_batch(listens: Iterable[NewListen]) -> ListenBatch:
    """The batch's columns and track identities (CPU only: run big batches off the event loop)."""
    tracks: dict[str, tuple[str, str, str | None, str, str]] = {}
    columns: dict[str, list[Any]] = {k: [] for k in ("norm_key", "played_at", "title", "artist", "album")}
    durations: list[int | None] = []
    for listen in listens:
        ident = _identity(listen.title, listen.artist)
        key = ident["norm_key"]
        if key not in tracks:
            tracks[key] = (
                listen.title,
                listen.artist,
                listen.album,
                ident["norm_artist"],
                ident["norm_title"],
            )
        columns["norm_key"].append(key)
        columns["played_at"].append(as_utc(listen.played_at))
        columns["title"].append(listen.title)
        columns["artist"].append(listen.artist)
        columns["album"].append(listen.album)
        durations.append(listen.duration_s)
    names = ("title", "artist", "album", "norm_artist", "norm_title")
    track_columns: dict[str, list[Any]] = {
        name: [t[i] for t in tracks.values()] for i, name in enumerate(names)
    }
    track_columns["norm_key"] = list(tracks)
    return ListenBatch(tracks=track_columns, listens={**columns, "duration_s": durations})


async def store_batch(
    session: AsyncSession, *, profile_id: int, source: str, batch: ListenBatch
) -> StoredBatch:
    """Store a batch under the webhook's identity and 60-second duplicate rules (flush only).

    Counts only stored listens as plays, never marks skips; new tracks wake the preview and
    tags stages.
    """
    if not len(batch):
        return StoredBatch(inserted=0, duplicates=0, new_tracks=0)
    new_tracks = await repo.insert_tracks(session, batch.tracks)
    inserted = await repo.insert_listens(session, batch.listens, profile_id=profile_id, source=source)
    if new_tracks:
        await queue.notify(session, "previews")
        await queue.notify(session, "tags")
    return StoredBatch(inserted=inserted, duplicates=len(batch) - inserted, new_tracks=new_tracks)
