"""Listening history: log what Home Assistant reports, attribute it to the right person.

Home Assistant reports every start and track change of a player; this service decides what
a person would count as one listen, from each speaker's own sequence (repository._LOG_SQL):
a report of the track the speaker is already playing, within the track's length plus
RESUME_SLACK (UNKNOWN_LENGTH_WINDOW when the length is unknown), is a resume; a member of a
group player playing the group's track is the group's listen.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

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


async def recent(session: AsyncSession, *, profile: str | None, limit: int) -> list[ListenOut]:
    """Newest listens first; all profiles unless one is named."""
    profile_id = None
    if profile:
        profile_id = (await profiles.require(session, name=profile)).id
    return [
        ListenOut.model_validate(dict(r))
        for r in await repo.recent(session, profile_id=profile_id, limit=limit)
    ]
