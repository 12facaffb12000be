"""Listening history: log what Home Assistant reports, attribute it to the right person."""

from __future__ import annotations

import logging
from typing import Literal

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from haunt_fm.errors import Unavailable
from haunt_fm.pipeline.common import PROFILE_NAME_RE, as_utc
from haunt_fm.pipeline.listens import repository as repo
from haunt_fm.pipeline.listens.rules import is_skip
from haunt_fm.pipeline.listens.schemas import ListenIn, ListenLogged, ListenOut
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.pipeline.profiles.repository import speaker_key
from haunt_fm.pipeline.tracks.identity import identity_params

LOG_ATTEMPTS = 3

log = logging.getLogger(__name__)


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
            if listen.speaker_entity or listen.speaker_name:
                await _mark_skips_safely(conn, event_id=event_id, profile_id=row["profile_id"])
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


async def mark_skips(conn: AsyncConnection, *, event_id: int, profile_id: int) -> list[int]:
    """Apply the skip rule around a newly stored listen; returns the ids it marked skipped.

    The listen just before it on the same speaker is skipped when this one started within its
    skip window; and when a later listen on the speaker is already stored (a listen arriving
    late, or history filled in), this one is skipped if that later one started within its own
    window. Marks are never taken back: a listen stored in between only shortens the gaps.
    """
    around = await repo.speaker_neighbours(conn, event_id=event_id)
    me = around.get("me")
    if me is None:
        return []
    marked: list[int] = []
    for earlier, later in ((around.get("previous"), me), (me, around.get("next"))):
        if earlier is None or later is None or earlier["skipped"]:
            continue
        duration = None if earlier["duration_s"] is None else float(earlier["duration_s"])
        if is_skip(started_at=earlier["played_at"], duration_s=duration, next_started_at=later["played_at"]):
            marked.append(int(earlier["id"]))
    if marked:
        await repo.mark_skipped(conn, event_ids=marked, profile_id=profile_id)
    return marked


async def _mark_skips_safely(conn: AsyncConnection, *, event_id: int, profile_id: int) -> None:
    # The listen is stored (its statement committed): failing to mark a skip must not answer 500
    # and make Home Assistant send it again.
    try:
        await mark_skips(conn, event_id=event_id, profile_id=profile_id)
    except DBAPIError as exc:
        log.warning("Could not apply the skip rule around listen %s: %s", event_id, exc)


async def recent(session: AsyncSession, *, profile: str | None, limit: int) -> list[ListenOut]:
    """Newest listens first; all profiles unless one is named."""
    profile_id = None
    if profile:
        profile_id = (await profiles.require(session, name=profile)).id
    return [
        ListenOut.model_validate(dict(r))
        for r in await repo.recent(session, profile_id=profile_id, limit=limit)
    ]
