"""Queries for the preview lookup: what iTunes said about a track, and the long-interval re-checks.

Claiming and settling go through the queue (`PREVIEW_STAGE`); the writes here are the
stage's own data, made only when the queue says the claim was still held.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm import queue

# The preview is known: hand the track to the embedding stage.
_FOUND_SQL = text(
    """
    UPDATE tracks SET
        preview_url = :preview_url, itunes_track_id = :itunes_track_id,
        itunes_album = :itunes_album, album = coalesce(album, :itunes_album), genre = :genre,
        duration_ms = coalesce(CAST(:duration_ms AS integer), duration_ms), artwork_url = :artwork_url,
        preview_checked_at = now(),
        embedding_status = CASE WHEN embedding_status = 'waiting' THEN 'pending' ELSE embedding_status END
    WHERE id = :id
    """
)
_CHECKED_SQL = text("UPDATE tracks SET preview_checked_at = now() WHERE id = :id")
# Long-interval retries: not-found tracks (the store grows) and failed ones, once their time comes.
_REQUEUE_SQL = text(
    """
    UPDATE tracks SET preview_status = 'pending', preview_attempts = 0
    WHERE preview_status IN ('not_found', 'failed') AND preview_next_at <= now()
    """
)
# By hand (`haunt-fm retry-failed`): every failed lookup, now, with a fresh attempt budget.
_REQUEUE_FAILED_SQL = text(
    """
    UPDATE tracks SET preview_status = 'pending', preview_attempts = 0, preview_error = NULL,
        preview_next_at = NULL
    WHERE preview_status = 'failed'
    """
)
_MERGE_STATE_SQL = text(
    """
    INSERT INTO app_state (key, value, updated_at) VALUES ('previews', CAST(:value AS jsonb), now())
    ON CONFLICT (key) DO UPDATE SET value = app_state.value || EXCLUDED.value, updated_at = now()
    """
)


async def store_found(session: AsyncSession, *, track_id: int, values: dict[str, Any]) -> None:
    """Store the preview (after the queue settled the claim as found) and wake the embedders."""
    await session.execute(_FOUND_SQL, {"id": track_id, **values})
    await queue.notify(session, "embeddings")


async def mark_checked(session: AsyncSession, *, track_id: int) -> None:
    await session.execute(_CHECKED_SQL, {"id": track_id})


async def requeue_due(session: AsyncSession) -> int:
    """Put not-found and failed tracks whose retry time has come back in the queue."""
    result = await session.execute(_REQUEUE_SQL)
    return int(getattr(result, "rowcount", 0) or 0)


async def requeue_failed(session: AsyncSession) -> int:
    """Put every failed lookup back in the queue at once (and wake the lookup everywhere)."""
    result = await session.execute(_REQUEUE_FAILED_SQL)
    requeued = int(getattr(result, "rowcount", 0) or 0)
    if requeued:
        await queue.notify(session, "previews")
    return requeued


async def merge_state(session: AsyncSession, value: dict[str, Any]) -> None:
    """Merge top-level keys into app_state['previews']."""
    await session.execute(_MERGE_STATE_SQL, {"value": json.dumps(value, default=str)})
