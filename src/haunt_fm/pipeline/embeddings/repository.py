"""Queries for the embedding stage: claim tracks with a lease, store vectors, record outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Claimable: pending, not leased (or the lease expired: its worker died), not backing off.
# Listened tracks first (the taste profile needs them), then the best discovery candidates.
_CLAIM_SQL = text(
    """
    UPDATE tracks t SET
        embedding_lease_until = now() + make_interval(secs => :lease_seconds),
        embedding_lease_owner = :owner,
        embedding_attempts = t.embedding_attempts + 1
    WHERE t.id IN (
        SELECT id FROM tracks
        WHERE embedding_status = 'pending'
          AND (embedding_lease_until IS NULL OR embedding_lease_until < now())
          AND (embedding_next_at IS NULL OR embedding_next_at <= now())
          AND preview_url IS NOT NULL
        ORDER BY listened DESC, discovery_score DESC, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    RETURNING t.id, t.preview_url, t.embedding_attempts, t.title, t.artist
    """
)


async def claim(
    session: AsyncSession, *, owner: str, limit: int, lease_seconds: float
) -> list[dict[str, Any]]:
    """Lease up to `limit` pending tracks to `owner`; commit right after so others skip them."""
    rows = await session.execute(_CLAIM_SQL, {"owner": owner, "limit": limit, "lease_seconds": lease_seconds})
    return [dict(r) for r in rows.mappings()]


async def store_embedding(
    session: AsyncSession,
    *,
    track_id: int,
    owner: str,
    vector: np.ndarray,
    model: str,
    pipeline_version: int,
    windows: int,
    runtime: str | None = None,
) -> bool:
    """Save the vector and mark the track done, if `owner` still holds its lease."""
    held = (
        await session.execute(
            text(
                "UPDATE tracks SET embedding_status = 'done', embedding_error = NULL, "
                "embedding_lease_until = NULL, embedding_lease_owner = NULL, embedding_next_at = NULL "
                "WHERE id = :id AND embedding_lease_owner = :owner RETURNING id"
            ),
            {"id": track_id, "owner": owner},
        )
    ).first()
    if held is None:
        # Our lease expired and another worker took the track: its result wins.
        return False
    await session.execute(
        text(
            """
            INSERT INTO track_embeddings (track_id, embedding, model, pipeline_version, windows, runtime)
            VALUES (:id, CAST(CAST(:embedding AS text) AS vector), :model, :version, :windows, :runtime)
            ON CONFLICT (track_id) DO UPDATE SET embedding = EXCLUDED.embedding, model = EXCLUDED.model,
                pipeline_version = EXCLUDED.pipeline_version, windows = EXCLUDED.windows,
                runtime = EXCLUDED.runtime, created_at = now()
            """
        ),
        {
            "id": track_id,
            "embedding": _vector_literal(vector),
            "model": model,
            "version": pipeline_version,
            "windows": windows,
            "runtime": runtime,
        },
    )
    return True


async def record_failure(
    session: AsyncSession, *, track_id: int, owner: str, error: str, retry_at: datetime | None
) -> None:
    """Failed for good (retry_at None) or back to pending until `retry_at`."""
    await session.execute(
        text(
            """
            UPDATE tracks SET
                embedding_status = CASE WHEN CAST(:retry_at AS timestamptz) IS NULL THEN 'failed'
                                        ELSE 'pending' END,
                embedding_error = :error, embedding_next_at = :retry_at,
                embedding_lease_until = NULL, embedding_lease_owner = NULL
            WHERE id = :id AND embedding_lease_owner = :owner
            """
        ),
        {"id": track_id, "owner": owner, "error": error[:2000], "retry_at": retry_at},
    )


async def requeue_preview(session: AsyncSession, *, track_id: int, owner: str, error: str) -> None:
    """The preview URL is gone: back to the preview-lookup stage (attempts keep counting)."""
    await session.execute(
        text(
            """
            UPDATE tracks SET preview_status = 'pending', preview_url = NULL, preview_next_at = NULL,
                preview_attempts = 0, embedding_status = 'waiting', embedding_error = :error,
                embedding_lease_until = NULL, embedding_lease_owner = NULL
            WHERE id = :id AND embedding_lease_owner = :owner
            """
        ),
        {"id": track_id, "owner": owner, "error": error[:2000]},
    )


async def release(session: AsyncSession, *, track_ids: Sequence[int], owner: str) -> None:
    """Give leases back untouched (shutdown, model not loaded): the attempt does not count."""
    await session.execute(
        text(
            "UPDATE tracks SET embedding_lease_until = NULL, embedding_lease_owner = NULL, "
            "embedding_attempts = greatest(embedding_attempts - 1, 0) "
            "WHERE id = ANY(:ids) AND embedding_lease_owner = :owner"
        ),
        {"ids": list(track_ids), "owner": owner},
    )


async def requeue_outdated(session: AsyncSession, *, model: str, pipeline_version: int) -> int:
    """Queue tracks embedded by another model or pipeline version again (old vectors serve meanwhile)."""
    result = await session.execute(
        text(
            """
            UPDATE tracks SET embedding_status = 'pending', embedding_attempts = 0, embedding_error = NULL
            WHERE embedding_status = 'done' AND id IN (
                SELECT track_id FROM track_embeddings WHERE model <> :model OR pipeline_version <> :version)
            """
        ),
        {"model": model, "version": pipeline_version},
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def heartbeat(session: AsyncSession, *, state: dict[str, Any]) -> None:
    """Upsert this worker's row in worker_states."""
    await session.execute(
        text(
            """
            INSERT INTO worker_states (id, hostname, pid, state, model, model_loaded, text_tower_ok, details,
                                       last_batch_at, last_error, tracks_done, heartbeat_at)
            VALUES (:id, :hostname, :pid, :state, :model, :model_loaded, :text_tower_ok,
                    CAST(:details AS jsonb), :last_batch_at, :last_error, :tracks_done, now())
            ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, model = EXCLUDED.model,
                model_loaded = EXCLUDED.model_loaded, text_tower_ok = EXCLUDED.text_tower_ok,
                details = EXCLUDED.details, last_batch_at = EXCLUDED.last_batch_at,
                last_error = EXCLUDED.last_error, tracks_done = EXCLUDED.tracks_done, heartbeat_at = now()
            """
        ),
        state,
    )


async def forget_worker(session: AsyncSession, *, worker_id: str) -> None:
    await session.execute(text("DELETE FROM worker_states WHERE id = :id"), {"id": worker_id})


def _vector_literal(vector: np.ndarray) -> str:
    # pgvector's text input format; avoids registering codecs on every pooled connection.
    return "[" + ",".join(f"{float(x):.8g}" for x in np.asarray(vector, dtype=np.float32).ravel()) + "]"
