"""Listen-event queries. Logging a listen is one round trip: it is the hot path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

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


_RECENT_SQL = text(
    """
    SELECT e.id AS event_id, e.track_id, t.title, t.artist, coalesce(e.album, t.album) AS album,
           p.name AS profile, e.speaker_name, e.speaker_entity, e.played_at,
           e.media_content_id, e.duration_s, e.source
    FROM listen_events e
    JOIN tracks t ON t.id = e.track_id
    JOIN profiles p ON p.id = e.profile_id
    WHERE (CAST(:profile_id AS bigint) IS NULL OR e.profile_id = :profile_id)
      AND (CAST(:speakers AS text[]) IS NULL
           OR lower(e.speaker_entity) = ANY(:speakers) OR lower(e.speaker_name) = ANY(:speakers))
    ORDER BY e.played_at DESC, e.id DESC
    LIMIT :limit
    """
)


async def recent(
    session: AsyncSession, *, profile_id: int | None, limit: int, speakers: Sequence[str] | None = None
) -> Sequence[Any]:
    """Newest first; `speakers` (lowercase names or entity ids) keeps only listens on those speakers."""
    params = {
        "profile_id": profile_id,
        "limit": limit,
        "speakers": None if speakers is None else list(speakers),
    }
    return (await session.execute(_RECENT_SQL, params)).mappings().all()


_TRACK_BY_KEY_SQL = text("SELECT id AS track_id, title, artist, album FROM tracks WHERE norm_key = :norm_key")


async def track_by_key(session: AsyncSession, *, norm_key: str) -> Any | None:
    """The track with this identity key, or None."""
    return (await session.execute(_TRACK_BY_KEY_SQL, {"norm_key": norm_key})).mappings().first()


# The speakers of the latest listens (an index scan on played_at), newest first per speaker.
_SPEAKERS_HEARD_SQL = text(
    """
    SELECT speaker_name, speaker_entity, max(played_at) AS last_played_at
    FROM (SELECT speaker_name, speaker_entity, played_at FROM listen_events
          ORDER BY played_at DESC LIMIT :window) e
    WHERE speaker_name IS NOT NULL OR speaker_entity IS NOT NULL
    GROUP BY speaker_name, speaker_entity
    ORDER BY last_played_at DESC
    """
)


async def speakers_heard(session: AsyncSession, *, window: int) -> Sequence[Any]:
    """(speaker_name, speaker_entity) pairs seen in the latest `window` listens, newest first."""
    return (await session.execute(_SPEAKERS_HEARD_SQL, {"window": window})).mappings().all()
