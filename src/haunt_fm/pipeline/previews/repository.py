"""Queries for the preview lookup: claim tracks with a lease, record what iTunes said."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Claimable: pending, not leased (or the lease expired: its process died), not backing off.
# Listened tracks first (the taste profile needs them), then candidates by summed match.
# No `id` tie-breaker: the order then matches ix_tracks_preview_queue, which a backward scan
# can serve without sorting every pending track on each claim.
_CLAIM_SQL = text(
    """
    UPDATE tracks t SET
        preview_lease_until = clock_timestamp() + make_interval(secs => :lease_seconds),
        preview_attempts = t.preview_attempts + 1
    WHERE t.id IN (
        SELECT id FROM tracks
        WHERE preview_status = 'pending'
          AND (preview_lease_until IS NULL OR preview_lease_until < now())
          AND (preview_next_at IS NULL OR preview_next_at <= now())
        ORDER BY listened DESC, discovery_score DESC
        LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    RETURNING t.id, t.artist, t.title, t.preview_attempts AS attempts, t.preview_lease_until AS lease,
              t.listened, t.discovery_score
    """
)

# The lease timestamp doubles as the claim's token: only its holder may record an outcome.
_FOUND_SQL = text(
    """
    UPDATE tracks SET
        preview_status = 'found', preview_url = :preview_url, itunes_track_id = :itunes_track_id,
        itunes_album = :itunes_album, album = coalesce(album, :itunes_album), genre = :genre,
        duration_ms = coalesce(CAST(:duration_ms AS integer), duration_ms), artwork_url = :artwork_url,
        preview_error = NULL, preview_checked_at = now(), preview_next_at = NULL,
        preview_lease_until = NULL, preview_attempts = 0,
        embedding_status = CASE WHEN embedding_status = 'waiting' THEN 'pending' ELSE embedding_status END
    WHERE id = :id AND preview_lease_until = :lease
    RETURNING id
    """
)
_NOT_FOUND_SQL = text(
    """
    UPDATE tracks SET
        preview_status = 'not_found', preview_error = :error, preview_checked_at = now(),
        preview_next_at = now() + make_interval(secs => :retry_seconds),
        preview_lease_until = NULL, preview_attempts = 0
    WHERE id = :id AND preview_lease_until = :lease
    RETURNING id
    """
)
_RETRY_SQL = text(
    """
    UPDATE tracks SET
        preview_status = :status, preview_error = :error, preview_checked_at = now(),
        preview_next_at = now() + make_interval(secs => :retry_seconds), preview_lease_until = NULL
    WHERE id = :id AND preview_lease_until = :lease
    RETURNING id
    """
)
_RELEASE_SQL = text(
    """
    UPDATE tracks SET preview_lease_until = NULL, preview_attempts = greatest(preview_attempts - 1, 0),
        preview_next_at = CASE WHEN CAST(:delay AS double precision) > 0
                               THEN now() + make_interval(secs => :delay) ELSE preview_next_at END
    WHERE id = :id AND preview_lease_until = :lease
    """
)
# Long-interval retries: not-found tracks (the store grows) and failed ones, once their time comes.
_REQUEUE_SQL = text(
    """
    UPDATE tracks SET preview_status = 'pending', preview_attempts = 0
    WHERE preview_status IN ('not_found', 'failed') AND preview_next_at <= now()
    """
)
_PENDING_SQL = text("SELECT count(*) FROM tracks WHERE preview_status = 'pending'")
_MERGE_STATE_SQL = text(
    """
    INSERT INTO app_state (key, value, updated_at) VALUES ('previews', CAST(:value AS jsonb), now())
    ON CONFLICT (key) DO UPDATE SET value = app_state.value || EXCLUDED.value, updated_at = now()
    """
)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    artist: str
    title: str
    attempts: int
    lease: datetime
    listened: bool
    discovery_score: float


async def claim(session: AsyncSession, *, limit: int, lease_seconds: float) -> list[Claimed]:
    """Lease up to `limit` tracks, best first; commit right after so others skip them."""
    rows = await session.execute(_CLAIM_SQL, {"limit": limit, "lease_seconds": lease_seconds})
    claimed = [
        Claimed(r.id, r.artist, r.title, r.attempts, r.lease, bool(r.listened), float(r.discovery_score))
        for r in rows
    ]
    # RETURNING has no order: put the batch back in queue order.
    claimed.sort(key=lambda c: (not c.listened, -c.discovery_score, c.id))
    return claimed


async def record_found(session: AsyncSession, *, item: Claimed, values: dict[str, Any]) -> bool:
    """Store the preview and hand the track to the embedding stage; False if the lease was lost."""
    params = {"id": item.id, "lease": item.lease, **values}
    return (await session.execute(_FOUND_SQL, params)).first() is not None


async def record_not_found(session: AsyncSession, *, item: Claimed, error: str, retry_seconds: float) -> bool:
    """No such song in the store: look again after `retry_seconds`."""
    params = {"id": item.id, "lease": item.lease, "error": error[:2000], "retry_seconds": retry_seconds}
    return (await session.execute(_NOT_FOUND_SQL, params)).first() is not None


async def record_retry(
    session: AsyncSession, *, item: Claimed, error: str, retry_seconds: float, failed: bool
) -> bool:
    """A failed attempt: pending again after `retry_seconds`, or `failed` (retried much later)."""
    params = {
        "id": item.id,
        "lease": item.lease,
        "status": "failed" if failed else "pending",
        "error": error[:2000],
        "retry_seconds": retry_seconds,
    }
    return (await session.execute(_RETRY_SQL, params)).first() is not None


async def release(session: AsyncSession, *, item: Claimed, delay_seconds: float = 0.0) -> None:
    """Give the lease back untouched (throttled, shutting down): the attempt does not count."""
    await session.execute(_RELEASE_SQL, {"id": item.id, "lease": item.lease, "delay": delay_seconds})


async def requeue_due(session: AsyncSession) -> int:
    """Put not-found and failed tracks whose retry time has come back in the queue."""
    result = await session.execute(_REQUEUE_SQL)
    return int(getattr(result, "rowcount", 0) or 0)


async def pending_count(session: AsyncSession) -> int:
    return int((await session.execute(_PENDING_SQL)).scalar_one())


async def merge_state(session: AsyncSession, value: dict[str, Any]) -> None:
    """Merge top-level keys into app_state['previews']."""
    await session.execute(_MERGE_STATE_SQL, {"value": json.dumps(value, default=str)})
