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
    ORDER BY e.played_at DESC, e.id DESC
    LIMIT :limit
    """
)


async def recent(session: AsyncSession, *, profile_id: int | None, limit: int) -> Sequence[Any]:
    return (await session.execute(_RECENT_SQL, {"profile_id": profile_id, "limit": limit})).mappings().all()


# --- Batches of listens (history imports) ------------------------------------------------
# Two statements per batch: the second must see the tracks the first (or a concurrent
# writer) created, which a CTE of one statement could not. Each track's listens go in time
# order (tracks one after another, for index locality), so of two listens within 60 s the
# earlier one is kept, as the webhook would have; a listen near one already stored is a
# duplicate whichever batch or import it comes in.

_BATCH_TRACKS_SQL = text(
    """
    INSERT INTO tracks (title, artist, album, norm_artist, norm_title, norm_key, source, listened)
    SELECT u.title, u.artist, u.album, u.norm_artist, u.norm_title, u.norm_key, 'listen', true
    FROM unnest(CAST(:title AS text[]), CAST(:artist AS text[]), CAST(:album AS text[]),
                CAST(:norm_artist AS text[]), CAST(:norm_title AS text[]), CAST(:norm_key AS text[]))
         AS u(title, artist, album, norm_artist, norm_title, norm_key)
    ON CONFLICT (norm_key) DO NOTHING
    RETURNING id
    """
)

# The play count and last play move only by the listens actually stored, so importing the
# same history twice changes nothing.
_BATCH_LISTENS_SQL = text(
    """
    WITH ins AS (
        INSERT INTO listen_events (track_id, profile_id, played_at, title, artist, album, duration_s, source)
        SELECT t.id, :profile_id, u.played_at, u.title, u.artist, u.album, u.duration_s, :source
        FROM unnest(CAST(:norm_key AS text[]), CAST(:played_at AS timestamptz[]), CAST(:title AS text[]),
                    CAST(:artist AS text[]), CAST(:album AS text[]), CAST(:duration_s AS integer[]))
             WITH ORDINALITY AS u(norm_key, played_at, title, artist, album, duration_s, n)
        JOIN tracks t ON t.norm_key = u.norm_key
        ORDER BY t.id, u.played_at, u.n
        ON CONFLICT DO NOTHING
        RETURNING track_id, played_at
    ), played AS (
        UPDATE tracks t SET listened = true, play_count = t.play_count + c.n,
                            last_played_at = greatest(t.last_played_at, c.latest)
        FROM (SELECT track_id, count(*) AS n, max(played_at) AS latest FROM ins GROUP BY track_id) c
        WHERE t.id = c.track_id
        RETURNING t.id
    )
    SELECT (SELECT count(*) FROM ins) AS inserted, (SELECT count(*) FROM played) AS tracks
    """
)


async def insert_tracks(session: AsyncSession, columns: dict[str, list[Any]]) -> int:
    """Create the tracks (one per identity key) that don't exist yet; returns how many were new."""
    return len((await session.execute(_BATCH_TRACKS_SQL, columns)).all())


async def insert_listens(
    session: AsyncSession, columns: dict[str, list[Any]], *, profile_id: int, source: str
) -> int:
    """Insert listens of known tracks unless they duplicate one (60 s rule); returns how many went in."""
    params = {**columns, "profile_id": profile_id, "source": source}
    return int((await session.execute(_BATCH_LISTENS_SQL, params)).mappings().one()["inserted"])
