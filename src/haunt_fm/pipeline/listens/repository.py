"""Listen-event queries. Logging a listen is one round trip: it is the hot path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import BigInteger

# Resolve the profile (explicit name > speaker mapping > default), find-or-create the
# track by identity (counting the play), and insert the event unless the exclusion
# constraint says it is a duplicate (same track and profile within 60 s) — all in one
# statement. The play count is approximate (a duplicate counts too): it only orders seeds.
_LOG_SQL = text(
    """
    WITH prof AS (
        SELECT coalesce(
            (SELECT id FROM profiles WHERE name = :profile),
            (SELECT profile_id FROM speaker_mappings
              WHERE speaker_norm IN (:speaker_name_key, :speaker_entity_key)
              ORDER BY (speaker_norm = :speaker_name_key) DESC LIMIT 1),
            (SELECT id FROM profiles WHERE name = 'default')) AS id
    ), trk AS (
        INSERT INTO tracks (title, artist, album, norm_artist, norm_title, norm_key, source, listened,
                            play_count, last_played_at)
        VALUES (:title, :artist, :album, :norm_artist, :norm_title, :norm_key, 'listen', true,
                1, coalesce(:played_at, now()))
        ON CONFLICT (norm_key) DO UPDATE SET
            listened = true,
            album = coalesce(tracks.album, EXCLUDED.album),
            play_count = tracks.play_count + 1,
            last_played_at = greatest(tracks.last_played_at, EXCLUDED.last_played_at)
        RETURNING id, (xmax = 0) AS inserted
    ), ev AS (
        INSERT INTO listen_events (track_id, profile_id, played_at, title, artist, album,
                                   speaker_name, speaker_entity, media_content_id, duration_s)
        SELECT trk.id, prof.id, coalesce(:played_at, now()), :title, :artist, :album,
               :speaker_name, :speaker_entity, :media_content_id, :duration_s
        FROM trk, prof
        ON CONFLICT DO NOTHING
        RETURNING id
    )
    SELECT (SELECT id FROM ev) AS event_id, (SELECT id FROM trk) AS track_id,
           prof.id AS profile_id, p.name AS profile_name,
           coalesce(:played_at, now()) AS played_at,
           -- A song never seen before needs a preview: wake the preview lookup on every machine.
           (SELECT count(pg_notify('haunt_fm_work', 'previews')) FROM trk WHERE trk.inserted) AS woke
    FROM prof JOIN profiles p ON p.id = prof.id
    """
)

_FIND_DUPLICATE_SQL = text(
    """
    SELECT id FROM listen_events
    WHERE track_id = :track_id AND profile_id = :profile_id
      AND listen_window(played_at) && listen_window(:played_at)
    ORDER BY played_at LIMIT 1
    """
)


async def log_listen(conn: AsyncConnection, params: dict[str, Any]) -> dict[str, Any]:
    """Insert one listen (one atomic statement); `event_id` is None when it duplicates one."""
    row = (await conn.execute(_LOG_SQL, params)).mappings().one()
    return dict(row)


async def find_duplicate(
    conn: AsyncConnection, *, track_id: int, profile_id: int, played_at: datetime
) -> int | None:
    row = (
        await conn.execute(
            _FIND_DUPLICATE_SQL, {"track_id": track_id, "profile_id": profile_id, "played_at": played_at}
        )
    ).first()
    return None if row is None else int(row[0])


# A listen and its neighbours on the same speaker (the listen just before it and the one just
# after, by played_at): what the skip rule needs. Two index probes on
# ix_listen_events_speaker_played (its expression is SPEAKER_KEY_SQL). The duration is the
# webhook's, else the track's.
_SPEAKER_NEIGHBOURS_SQL = text(
    """
    WITH me AS (
        SELECT e.id, e.played_at, e.profile_id, e.skipped,
               coalesce(e.speaker_entity, e.speaker_name) AS speaker,
               coalesce(e.duration_s, t.duration_ms / 1000.0) AS duration_s
        FROM listen_events e JOIN tracks t ON t.id = e.track_id
        WHERE e.id = :event_id
    )
    SELECT 'me' AS side, me.id, me.played_at, me.duration_s, me.skipped FROM me
    UNION ALL
    (SELECT 'previous', e.id, e.played_at, coalesce(e.duration_s, t.duration_ms / 1000.0), e.skipped
     FROM me, listen_events e JOIN tracks t ON t.id = e.track_id
     WHERE coalesce(e.speaker_entity, e.speaker_name) = me.speaker
       AND e.played_at <= me.played_at AND (e.played_at < me.played_at OR e.id < me.id)
     ORDER BY e.played_at DESC, e.id DESC
     LIMIT 1)
    UNION ALL
    (SELECT 'next', e.id, e.played_at, coalesce(e.duration_s, t.duration_ms / 1000.0), e.skipped
     FROM me, listen_events e JOIN tracks t ON t.id = e.track_id
     WHERE coalesce(e.speaker_entity, e.speaker_name) = me.speaker
       AND e.played_at >= me.played_at AND (e.played_at > me.played_at OR e.id > me.id)
     ORDER BY e.played_at, e.id
     LIMIT 1)
    """
)

# Mark listens skipped. A profile other than the one whose listen caused it would not see its
# taste go stale by any timestamp of its own: its activity_at moves on.
_MARK_SKIPPED_SQL = text(
    """
    WITH marked AS (
        UPDATE listen_events SET skipped = true
        WHERE id = ANY(:ids) AND NOT skipped
        RETURNING profile_id
    ), bumped AS (
        UPDATE profiles SET activity_at = clock_timestamp()
        WHERE id IN (SELECT profile_id FROM marked WHERE profile_id <> :profile_id)
    )
    SELECT count(*) FROM marked
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


async def speaker_neighbours(conn: AsyncConnection, *, event_id: int) -> dict[str, dict[str, Any]]:
    """The listen ('me') and the listens just before ('previous') and after ('next') it on its speaker."""
    rows = (await conn.execute(_SPEAKER_NEIGHBOURS_SQL, {"event_id": event_id})).mappings().all()
    return {r["side"]: dict(r) for r in rows}


async def mark_skipped(conn: AsyncConnection, *, event_ids: Sequence[int], profile_id: int) -> int:
    """Mark these listens skipped; returns how many were not already."""
    return int(
        (
            await conn.execute(_MARK_SKIPPED_SQL, {"ids": list(event_ids), "profile_id": profile_id})
        ).scalar_one()
    )


_RECENT_SQL = text(
    """
    SELECT e.id AS event_id, e.track_id, t.title, t.artist, coalesce(e.album, t.album) AS album,
           p.name AS profile, e.speaker_name, e.speaker_entity, e.played_at,
           e.media_content_id, e.duration_s, e.source, e.skipped
    FROM listen_events e
    JOIN tracks t ON t.id = e.track_id
    JOIN profiles p ON p.id = e.profile_id
    WHERE (CAST(:profile_id AS bigint) IS NULL OR e.profile_id = :profile_id)
    ORDER BY e.played_at DESC, e.id DESC
    LIMIT :limit
    """
)


async def recent(session: AsyncSession, *, profile_id: int | None, limit: int) -> Sequence[Any]:
    return (await session.execute(_RECENT_SQL, {"profile_id": profile_id, "limit": limit})).mappings().all()
