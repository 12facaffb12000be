"""Radio queries: radios and their tracks, the speaker's listens, steering, speakers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import BigInteger, Integer, Text

from haunt_fm.db.base import EMBEDDING_DIM
from haunt_fm.pipeline.profiles.models import Profile

_MAX_LISTEN_SQL = text("SELECT coalesce(max(id), 0) FROM listen_events")


async def max_listen_id(session: AsyncSession) -> int:
    """The newest listen's id (a new radio reads only listens after it)."""
    return int((await session.execute(_MAX_LISTEN_SQL)).scalar_one())


async def profile(session: AsyncSession, *, profile_id: int) -> Profile | None:
    return await session.get(Profile, profile_id)


_MAPPED_PROFILE_SQL = text(
    """
    SELECT profile_id FROM speaker_mappings
    WHERE speaker_norm = ANY(:keys)
    ORDER BY array_position(CAST(:keys AS text[]), speaker_norm)
    LIMIT 1
    """
).bindparams(bindparam("keys", type_=ARRAY(Text)))


async def mapped_profile_id(session: AsyncSession, *, keys: Sequence[str]) -> int | None:
    """The profile mapped to the first of `keys` (normalised speaker names) that has one."""
    if not keys:
        return None
    row = (await session.execute(_MAPPED_PROFILE_SQL, {"keys": list(keys)})).first()
    return None if row is None else int(row[0])


_END_SQL = text(
    """
    UPDATE radios SET active = false, ended_at = now(), ended_reason = :reason, ended_detail = :detail
    WHERE active AND (id = :id OR (CAST(:id AS bigint) IS NULL AND speaker_entity = :speaker))
    RETURNING id
    """
)


async def end(
    session: AsyncSession,
    *,
    reason: str,
    detail: str,
    radio_id: int | None = None,
    speaker: str | None = None,
) -> int | None:
    """End the active radio with this id (or on this speaker); its id, None when none was active."""
    params = {"id": radio_id, "speaker": speaker, "reason": reason, "detail": detail}
    row = (await session.execute(_END_SQL, params)).first()
    return None if row is None else int(row[0])


# Inserted already claimed by the caller (the request that starts it sends the first batch).
_INSERT_SQL = text(
    """
    INSERT INTO radios (speaker_entity, profile_id, vibe, alpha, known_pct, batch, listen_cursor,
                        work_attempts, work_lease_owner, work_lease_until)
    VALUES (:speaker, :profile_id, :vibe, :alpha, :known_pct, :batch, :cursor,
            1, :owner, clock_timestamp() + make_interval(secs => :lease_seconds))
    RETURNING id
    """
)


async def insert(
    session: AsyncSession,
    *,
    speaker: str,
    profile_id: int,
    vibe: str | None,
    alpha: float,
    known_pct: float,
    batch: int,
    cursor: int,
    owner: str,
    lease_seconds: float,
) -> int:
    """A new active radio, leased to `owner`; returns its id."""
    params = {
        "speaker": speaker,
        "profile_id": profile_id,
        "vibe": vibe,
        "alpha": alpha,
        "known_pct": known_pct,
        "batch": batch,
        "cursor": cursor,
        "owner": owner,
        "lease_seconds": lease_seconds,
    }
    return int((await session.execute(_INSERT_SQL, params)).scalar_one())


_ADD_TRACKS_SQL = text(
    """
    INSERT INTO radio_tracks (radio_id, position, track_id, batch_no, kind, score)
    SELECT :radio_id, x.position, x.track_id, :batch_no, x.kind, x.score
    FROM unnest(CAST(:positions AS integer[]), CAST(:track_ids AS bigint[]),
                CAST(:kinds AS text[]), CAST(:scores AS double precision[]))
         AS x(position, track_id, kind, score)
    """
).bindparams(
    bindparam("positions", type_=ARRAY(Integer)),
    bindparam("track_ids", type_=ARRAY(BigInteger)),
    bindparam("kinds", type_=ARRAY(Text)),
)


async def add_tracks(
    session: AsyncSession, *, radio_id: int, batch_no: int, tracks: Sequence[dict[str, Any]]
) -> None:
    """Queue a batch (positions, track ids, kinds and scores given) as not yet sent."""
    if not tracks:
        return
    await session.execute(
        _ADD_TRACKS_SQL,
        {
            "radio_id": radio_id,
            "batch_no": batch_no,
            "positions": [t["position"] for t in tracks],
            "track_ids": [t["track_id"] for t in tracks],
            "kinds": [t["kind"] for t in tracks],
            "scores": [t["score"] for t in tracks],
        },
    )


_RADIO_COLUMNS = """
    r.id AS radio_id, r.speaker_entity, p.name AS profile, r.profile_id, r.vibe, r.alpha, r.known_pct,
    r.batch, r.active, r.started_at, r.ended_at, r.ended_reason, r.ended_detail, r.last_heard_at,
    r.listen_cursor, r.pokes, r.work_attempts, r.work_error, r.work_next_at
"""

_GET_SQL = text(
    f"SELECT {_RADIO_COLUMNS} FROM radios r JOIN profiles p ON p.id = r.profile_id WHERE r.id = :id"
)


async def get(session: AsyncSession, *, radio_id: int) -> dict[str, Any] | None:
    row = (await session.execute(_GET_SQL, {"id": radio_id})).mappings().first()
    return None if row is None else dict(row)


# Active radios first, then those that ended since `since`; newest first.
_RECENT_SQL = text(
    f"""
    SELECT {_RADIO_COLUMNS} FROM radios r JOIN profiles p ON p.id = r.profile_id
    WHERE r.active OR r.ended_at >= :since
    ORDER BY r.active DESC, r.started_at DESC, r.id DESC
    LIMIT :limit
    """
)


async def recent(session: AsyncSession, *, since: datetime, limit: int) -> list[dict[str, Any]]:
    rows = await session.execute(_RECENT_SQL, {"since": since, "limit": limit})
    return [dict(r) for r in rows.mappings()]


# Each track with what the lists need: its details, its state, and whether the radio's
# profile thumbed it down (in any vibe) since the radio started.
_TRACKS_SQL = text(
    """
    SELECT rt.radio_id, rt.position, rt.track_id, t.title, t.artist,
           coalesce(t.album, t.itunes_album) AS album, t.norm_artist, t.duration_ms, rt.batch_no,
           rt.kind, rt.score, rt.queued_at, rt.send_status,
           rt.sent_at, rt.send_error, rt.played_at, rt.heard_duration_s, rt.skipped,
           EXISTS (SELECT 1 FROM feedback f
                   WHERE f.profile_id = r.profile_id AND f.track_id = rt.track_id AND f.rating = 'down'
                     AND f.created_at >= r.started_at
                     AND (r.ended_at IS NULL OR f.created_at <= r.ended_at)) AS disliked
    FROM radio_tracks rt
    JOIN radios r ON r.id = rt.radio_id
    JOIN tracks t ON t.id = rt.track_id
    WHERE rt.radio_id = ANY(:ids)
    ORDER BY rt.radio_id, rt.position
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


async def tracks_of(session: AsyncSession, *, radio_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The radios' tracks in queue order."""
    if not radio_ids:
        return []
    rows = await session.execute(_TRACKS_SQL, {"ids": list(radio_ids)})
    return [dict(r) for r in rows.mappings()]


# Listens on the speaker the radio has not read yet, from when it started (a little before,
# for a speaker clock that runs behind). The id range keeps this to the newest few rows.
_LISTENS_SQL = text(
    """
    SELECT e.id AS event_id, e.track_id, e.played_at, e.duration_s, t.title, t.artist
    FROM listen_events e JOIN tracks t ON t.id = e.track_id
    WHERE e.id > :cursor AND lower(e.speaker_entity) = :speaker
      AND e.played_at >= CAST(:started_at AS timestamptz) - interval '5 seconds'
    ORDER BY e.played_at, e.id
    """
)


async def listens_since(
    session: AsyncSession, *, speaker: str, cursor: int, started_at: datetime
) -> list[dict[str, Any]]:
    rows = await session.execute(
        _LISTENS_SQL, {"speaker": speaker, "cursor": cursor, "started_at": started_at}
    )
    return [dict(r) for r in rows.mappings()]


# Tracks of radios this speaker played before this one that were replaced lately: music they
# queued may still reach the speaker after the new radio replaced the queue.
_LEFTOVERS_SQL = text(
    """
    SELECT DISTINCT rt.track_id FROM radios r JOIN radio_tracks rt ON rt.radio_id = r.id
    WHERE r.speaker_entity = :speaker AND r.id <> :radio_id AND r.ended_reason = 'replaced'
      AND r.ended_at >= :since
    """
)


async def leftover_track_ids(
    session: AsyncSession, *, speaker: str, radio_id: int, since: datetime
) -> set[int]:
    rows = await session.execute(_LEFTOVERS_SQL, {"speaker": speaker, "radio_id": radio_id, "since": since})
    return {int(r[0]) for r in rows}


_HEARD_SQL = text(
    """
    UPDATE radio_tracks rt SET played_at = x.played_at, event_id = x.event_id, heard_duration_s = x.duration_s
    FROM unnest(CAST(:positions AS integer[]), CAST(:played AS timestamptz[]),
                CAST(:events AS bigint[]), CAST(:durations AS integer[]))
         AS x(position, played_at, event_id, duration_s)
    WHERE rt.radio_id = :radio_id AND rt.position = x.position AND rt.played_at IS NULL
    """
)
_SKIPPED_SQL = text(
    "UPDATE radio_tracks SET skipped = true WHERE radio_id = :radio_id AND position = ANY(:positions)"
).bindparams(bindparam("positions", type_=ARRAY(Integer)))
_CURSOR_SQL = text(
    """
    UPDATE radios SET listen_cursor = greatest(listen_cursor, :cursor),
        last_heard_at = CASE WHEN CAST(:heard AS timestamptz) IS NULL THEN last_heard_at
                             ELSE greatest(coalesce(last_heard_at, :heard), :heard) END
    WHERE id = :radio_id
    """
)


async def record_reading(
    session: AsyncSession,
    *,
    radio_id: int,
    heard: Sequence[tuple[int, datetime, int, int | None]],
    skipped: Sequence[int],
    cursor: int,
    last_heard_at: datetime | None,
) -> None:
    """Store what the listens said: (position, played_at, event id, duration) heard, skips, the cursor."""
    if heard:
        await session.execute(
            _HEARD_SQL,
            {
                "radio_id": radio_id,
                "positions": [h[0] for h in heard],
                "played": [h[1] for h in heard],
                "events": [h[2] for h in heard],
                "durations": [h[3] for h in heard],
            },
        )
    if skipped:
        await session.execute(_SKIPPED_SQL, {"radio_id": radio_id, "positions": sorted(skipped)})
    await session.execute(_CURSOR_SQL, {"radio_id": radio_id, "cursor": cursor, "heard": last_heard_at})


# Every track of the radio's artists that the room turned down (skipped, or thumbed down by
# the radio's profile during it): none of them is queued again in this radio.
_TURNED_DOWN_SQL = text(
    """
    WITH down AS (
        SELECT rt.track_id FROM radio_tracks rt JOIN radios r ON r.id = rt.radio_id
        WHERE rt.radio_id = :radio_id
          AND (rt.skipped OR EXISTS (
                SELECT 1 FROM feedback f
                WHERE f.profile_id = r.profile_id AND f.track_id = rt.track_id AND f.rating = 'down'
                  AND f.created_at >= r.started_at))
    )
    SELECT (SELECT coalesce(array_agg(track_id), ARRAY[]::bigint[]) FROM down) AS tracks,
           (SELECT coalesce(array_agg(DISTINCT t.norm_artist), ARRAY[]::text[])
            FROM down d JOIN tracks t ON t.id = d.track_id) AS artists,
           (SELECT avg(te.embedding) FROM down d JOIN track_embeddings te ON te.track_id = d.track_id)
               AS mean
    """
).columns(mean=Vector(EMBEDDING_DIM))

_ARTIST_TRACKS_SQL = text("SELECT id FROM tracks WHERE norm_artist = ANY(:artists)").bindparams(
    bindparam("artists", type_=ARRAY(Text))
)


async def turned_down(
    session: AsyncSession, *, radio_id: int
) -> tuple[list[int], list[str], np.ndarray | None]:
    """(track ids, their artists, the mean of their embeddings) of what the room turned down."""
    row = (await session.execute(_TURNED_DOWN_SQL, {"radio_id": radio_id})).mappings().one()
    mean = None if row["mean"] is None else np.asarray(row["mean"], dtype=np.float32)
    return [int(t) for t in row["tracks"]], list(row["artists"]), mean


async def tracks_by_artists(session: AsyncSession, *, artists: Sequence[str]) -> list[int]:
    """Every track by these (normalised) artists."""
    if not artists:
        return []
    return [int(t) for t in (await session.execute(_ARTIST_TRACKS_SQL, {"artists": list(artists)})).scalars()]


# Only an active radio's tracks go out; a radio stopped meanwhile sends nothing more.
_UNSENT_SQL = text(
    """
    SELECT rt.position, rt.track_id, t.title, t.artist, coalesce(t.album, t.itunes_album) AS album,
           rt.kind, rt.score
    FROM radio_tracks rt JOIN radios r ON r.id = rt.radio_id JOIN tracks t ON t.id = rt.track_id
    WHERE rt.radio_id = :radio_id AND r.active AND rt.send_status = 'pending'
    ORDER BY rt.position
    """
)
_ANY_QUEUED_SQL = text(
    "SELECT EXISTS (SELECT 1 FROM radio_tracks WHERE radio_id = :radio_id AND send_status = 'queued')"
)
_MARK_SENT_SQL = text(
    """
    WITH marked AS (
        UPDATE radio_tracks SET send_status = :status, sent_at = now(), send_error = :error
        WHERE radio_id = :radio_id AND position = :position
    )
    SELECT active FROM radios WHERE id = :radio_id
    """
)


async def unsent(session: AsyncSession, *, radio_id: int) -> list[dict[str, Any]]:
    """The tracks still to send, in order (none when the radio is no longer active)."""
    return [dict(r) for r in (await session.execute(_UNSENT_SQL, {"radio_id": radio_id})).mappings()]


async def any_queued(session: AsyncSession, *, radio_id: int) -> bool:
    """Whether Music Assistant accepted any track of this radio yet."""
    return bool((await session.execute(_ANY_QUEUED_SQL, {"radio_id": radio_id})).scalar_one())


async def mark_sent(
    session: AsyncSession, *, radio_id: int, position: int, status: str, error: str | None
) -> bool:
    """Record what Music Assistant said about one track; whether the radio is still active."""
    params = {"radio_id": radio_id, "position": position, "status": status, "error": error}
    return bool((await session.execute(_MARK_SENT_SQL, params)).scalar_one())


_LOCK_SQL = text("SELECT pokes, active FROM radios WHERE id = :id FOR UPDATE")


async def lock(session: AsyncSession, *, radio_id: int) -> tuple[int, bool] | None:
    """(pokes, active) with the row locked until commit: listens wait to poke it meanwhile."""
    row = (await session.execute(_LOCK_SQL, {"id": radio_id})).first()
    return None if row is None else (int(row[0]), bool(row[1]))


# Speakers a radio can play on: Music Assistant players seen in recent listens, mapped to a
# profile, or playing a radio. Names as the webhook reported them.
_SPEAKERS_SQL = text(
    """
    WITH seen AS (
        SELECT lower(e.speaker_entity) AS entity, max(e.played_at) AS last_listen_at,
               (array_agg(e.speaker_name ORDER BY e.played_at DESC)
                   FILTER (WHERE e.speaker_name IS NOT NULL))[1] AS name
        FROM listen_events e
        WHERE e.played_at >= :since AND e.speaker_entity ILIKE 'media\\_player.%'
        GROUP BY lower(e.speaker_entity)
    ), mapped AS (
        SELECT m.speaker_norm AS entity, p.name AS profile
        FROM speaker_mappings m JOIN profiles p ON p.id = m.profile_id
        WHERE m.speaker_norm LIKE 'media\\_player.%'
    ), by_name AS (
        SELECT m.speaker_norm AS name_norm, p.name AS profile
        FROM speaker_mappings m JOIN profiles p ON p.id = m.profile_id
    ), playing AS (
        SELECT speaker_entity AS entity, id AS radio_id FROM radios WHERE active
    ), everyone AS (
        SELECT entity FROM seen UNION SELECT entity FROM mapped UNION SELECT entity FROM playing
    )
    SELECT x.entity AS speaker_entity, s.name AS speaker_name, s.last_listen_at,
           coalesce(bn.profile, m.profile) AS profile, pl.radio_id
    FROM everyone x
    LEFT JOIN seen s ON s.entity = x.entity
    LEFT JOIN mapped m ON m.entity = x.entity
    LEFT JOIN by_name bn ON bn.name_norm = lower(regexp_replace(btrim(s.name), '\\s+', ' ', 'g'))
    LEFT JOIN playing pl ON pl.entity = x.entity
    ORDER BY coalesce(s.name, x.entity), x.entity
    LIMIT :limit
    """
)


async def speakers(session: AsyncSession, *, since: datetime, limit: int) -> list[dict[str, Any]]:
    rows = await session.execute(_SPEAKERS_SQL, {"since": since, "limit": limit})
    return [dict(r) for r in rows.mappings()]


# When the next radio falls due (a retry, a silence check); held radios are their holder's.
_NEXT_DUE_SQL = text(
    """
    SELECT CASE WHEN bool_or(work_next_at IS NULL) THEN now() ELSE min(work_next_at) END FROM radios
    WHERE active AND (work_lease_until IS NULL OR work_lease_until < now())
    """
)


async def next_due(session: AsyncSession) -> datetime | None:
    """When the next unheld active radio is due (None when there is none)."""
    due: datetime | None = (await session.execute(_NEXT_DUE_SQL)).scalar_one()
    return due
