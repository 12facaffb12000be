"""Feedback queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# One opinion per (profile, track, vibe context): a new click replaces the old one and
# counts as new (created_at moves on, so the taste profile rebuilds). clock_timestamp(),
# not now(): a taste build running concurrently must see this row as newer than itself.
_UPSERT_SQL = text(
    """
    WITH saved AS (
        INSERT INTO feedback (profile_id, track_id, rating, vibe, vibe_norm, created_at)
        SELECT :pid, t.id, :rating, :vibe, :vibe_norm, clock_timestamp()
        FROM tracks t WHERE t.id = :track_id
        ON CONFLICT ON CONSTRAINT uq_feedback_profile_track_vibe DO UPDATE SET
            rating = EXCLUDED.rating, vibe = EXCLUDED.vibe, created_at = EXCLUDED.created_at
        RETURNING id, track_id, profile_id, rating, vibe, created_at, (xmax <> 0) AS replaced
    )
    SELECT s.id AS feedback_id, s.track_id, t.title, t.artist, p.name AS profile,
           s.rating, s.vibe, s.created_at, s.replaced
    FROM saved s JOIN tracks t ON t.id = s.track_id JOIN profiles p ON p.id = s.profile_id
    """
)

_LIST_SQL = text(
    """
    SELECT f.id AS feedback_id, f.track_id, t.title, t.artist, p.name AS profile,
           f.rating, f.vibe, f.created_at
    FROM feedback f
    JOIN tracks t ON t.id = f.track_id
    JOIN profiles p ON p.id = f.profile_id
    WHERE (CAST(:pid AS bigint) IS NULL OR f.profile_id = :pid)
    ORDER BY f.created_at DESC, f.id DESC
    LIMIT :limit
    """
)

# Deleting feedback leaves no newer timestamp behind, so the profile's activity_at is
# bumped: its taste profile is rebuilt on next use.
_DELETE_SQL = text(
    """
    WITH gone AS (
        DELETE FROM feedback WHERE id = :id
        RETURNING id, track_id, profile_id, rating, vibe, created_at
    ), bumped AS (
        UPDATE profiles SET activity_at = clock_timestamp()
        WHERE id = (SELECT profile_id FROM gone)
    )
    SELECT g.id AS feedback_id, g.track_id, t.title, t.artist, p.name AS profile,
           g.rating, g.vibe, g.created_at
    FROM gone g JOIN tracks t ON t.id = g.track_id JOIN profiles p ON p.id = g.profile_id
    """
)


async def upsert(
    session: AsyncSession, *, profile_id: int, track_id: int, rating: str, vibe: str, vibe_norm: str
) -> dict[str, Any] | None:
    """Save the rating; None when the track does not exist."""
    params = {
        "pid": profile_id,
        "track_id": track_id,
        "rating": rating,
        "vibe": vibe,
        "vibe_norm": vibe_norm,
    }
    row = (await session.execute(_UPSERT_SQL, params)).mappings().first()
    return None if row is None else dict(row)


async def recent(session: AsyncSession, *, profile_id: int | None, limit: int) -> Sequence[Any]:
    return (await session.execute(_LIST_SQL, {"pid": profile_id, "limit": limit})).mappings().all()


async def delete(session: AsyncSession, *, feedback_id: int) -> dict[str, Any] | None:
    row = (await session.execute(_DELETE_SQL, {"id": feedback_id})).mappings().first()
    return None if row is None else dict(row)
