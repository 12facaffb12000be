"""Listening history: log what Home Assistant reports, attribute it to the right person."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from haunt_fm import queue
from haunt_fm.errors import Unavailable
from haunt_fm.pipeline.common import PROFILE_NAME_RE, as_utc
from haunt_fm.pipeline.listens import repository as repo
from haunt_fm.pipeline.listens.schemas import ListenIn, ListenLogged, ListenOut
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.pipeline.profiles.repository import speaker_key
from haunt_fm.pipeline.tracks.identity import identity_params

LOG_ATTEMPTS = 3


async def log_listen(conn: AsyncConnection, *, listen: ListenIn) -> ListenLogged:
    """Store a listen, or report the one it duplicates (same track and profile within 60 s)."""
    played_at = as_utc(listen.played_at) if listen.played_at else None
    wanted = listen.profile
    params = {
        "title": listen.title,
        "artist": listen.artist,
        "album": listen.album,
        "profile": wanted,
        "speaker_name": listen.speaker_name,
        "speaker_entity": listen.speaker_entity,
        "speaker_name_key": speaker_key(listen.speaker_name) if listen.speaker_name else None,
        "speaker_entity_key": speaker_key(listen.speaker_entity) if listen.speaker_entity else None,
        "played_at": played_at,
        "media_content_id": listen.media_content_id,
        "duration_s": listen.duration_s,
        **identity_params(title=listen.title, artist=listen.artist),
    }
    # Each attempt is one atomic statement. A profile deleted while the listen arrives (the
    # event's profile vanishes: a foreign-key error) or a duplicate that vanished between our
    # two statements is simply tried again: the listen then goes where it now belongs.
    for attempt in range(1, LOG_ATTEMPTS + 1):
        try:
            row = await repo.log_listen(conn, params)
        except IntegrityError:
            if attempt == LOG_ATTEMPTS:
                raise
            continue
        note = None
        if wanted is not None and wanted != row["profile_name"]:
            # Never drop a listen over a profile problem: log it and say where it went.
            why = "is not a valid profile name" if not PROFILE_NAME_RE.match(wanted) else "does not exist"
            note = f"Profile '{wanted}' {why}; the listen was logged to '{row['profile_name']}'."
        status: Literal["logged", "duplicate"]
        if row["event_id"] is not None:
            status, event_id = "logged", row["event_id"]
        else:
            status = "duplicate"
            event_id = await repo.find_duplicate(
                conn, track_id=row["track_id"], profile_id=row["profile_id"], played_at=row["played_at"]
            )
            if event_id is None:
                continue
        return ListenLogged(
            status=status, event_id=event_id, track_id=row["track_id"], profile=row["profile_name"], note=note
        )
    raise Unavailable("The listen could not be stored while its profile was changing; send it again.")


async def recent(session: AsyncSession, *, profile: str | None, limit: int) -> list[ListenOut]:
    """Newest listens first; all profiles unless one is named."""
    profile_id = None
    if profile:
        profile_id = (await profiles.require(session, name=profile)).id
    return [
        ListenOut.model_validate(dict(r))
        for r in await repo.recent(session, profile_id=profile_id, limit=limit)
    ]


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

    Counts only stored listens as plays, never marks skips; new tracks wake the preview lookup.
    """
    if not len(batch):
        return StoredBatch(inserted=0, duplicates=0, new_tracks=0)
    new_tracks = await repo.insert_tracks(session, batch.tracks)
    inserted = await repo.insert_listens(session, batch.listens, profile_id=profile_id, source=source)
    if new_tracks:
        await queue.notify(session, "previews")
    return StoredBatch(inserted=inserted, duplicates=len(batch) - inserted, new_tracks=new_tracks)
