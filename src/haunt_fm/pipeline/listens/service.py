"""Listening history: log what Home Assistant reports, attribute it to the right person."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from haunt_fm.errors import Unavailable
from haunt_fm.pipeline.common import PROFILE_NAME_RE, as_utc
from haunt_fm.pipeline.listens import repository as repo
from haunt_fm.pipeline.listens.schemas import ListenIn, ListenLogged, ListenOut, SpeakerHeard, TrackRef
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
