"""Queries for the embedding stage: vectors for tracks and vibe texts, and the state each worker reports.

Claiming and settling go through the queue (`EMBEDDING_STAGE`, `TEXT_STAGE`); the writes
here are the stage's own data, made only when the queue says the claim was still held.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm import queue
from haunt_fm.db.base import EMBEDDING_DIM
from haunt_fm.pipeline.embeddings.models import EMBEDDING_STAGE, TEXT_STAGE

_STORE_VECTOR_SQL = text(
    """
    INSERT INTO track_embeddings (track_id, embedding, model, pipeline_version, windows, runtime)
    VALUES (:id, CAST(CAST(:embedding AS text) AS vector), :model, :version, :windows, :runtime)
    ON CONFLICT (track_id) DO UPDATE SET embedding = EXCLUDED.embedding, model = EXCLUDED.model,
        pipeline_version = EXCLUDED.pipeline_version, windows = EXCLUDED.windows,
        runtime = EXCLUDED.runtime, created_at = now()
    """
)

# The preview URL is gone (iTunes rotates them): back to preview lookup. The embedding
# attempt keeps counting, so a URL that keeps vanishing ends as a failure, not a loop.
_BACK_TO_PREVIEWS_SQL = text(
    """
    UPDATE tracks SET preview_status = 'pending', preview_url = NULL, preview_next_at = NULL,
        preview_attempts = 0
    WHERE id = :id
    """
)

_REQUEUE_OUTDATED_SQL = text(
    """
    UPDATE tracks SET embedding_status = 'pending', embedding_attempts = 0, embedding_error = NULL,
        embedding_next_at = NULL
    WHERE embedding_status = 'done' AND id IN (
        SELECT track_id FROM track_embeddings WHERE model <> :model OR pipeline_version <> :version)
    """
)

# By hand (`haunt-fm retry-failed`): every failed embedding, now, with a fresh attempt budget.
# A track whose preview went away meanwhile waits for preview lookup instead.
_REQUEUE_FAILED_SQL = text(
    """
    UPDATE tracks SET
        embedding_status = CASE WHEN preview_url IS NULL THEN 'waiting' ELSE 'pending' END,
        embedding_attempts = 0, embedding_error = NULL, embedding_next_at = NULL
    WHERE embedding_status = 'failed'
    """
)

_HEARTBEAT_SQL = text(
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
)


async def store_vector(
    session: AsyncSession,
    *,
    track_id: int,
    vector: np.ndarray,
    model: str,
    pipeline_version: int,
    windows: int,
    runtime: str | None = None,
) -> None:
    """Save a track's vector (call after the queue confirmed the claim was still held)."""
    await session.execute(
        _STORE_VECTOR_SQL,
        {
            "id": track_id,
            "embedding": _vector_literal(vector),
            "model": model,
            "version": pipeline_version,
            "windows": windows,
            "runtime": runtime,
        },
    )


async def back_to_previews(session: AsyncSession, *, track_id: int) -> None:
    """The preview URL is gone: look the track up again (and wake the lookup everywhere)."""
    await session.execute(_BACK_TO_PREVIEWS_SQL, {"id": track_id})
    await queue.notify(session, "previews")


async def requeue_outdated(session: AsyncSession, *, model: str, pipeline_version: int) -> int:
    """Queue tracks embedded by another model or pipeline version again (old vectors serve meanwhile)."""
    result = await session.execute(_REQUEUE_OUTDATED_SQL, {"model": model, "version": pipeline_version})
    requeued = int(getattr(result, "rowcount", 0) or 0)
    if requeued:
        await queue.notify(session, EMBEDDING_STAGE)
    return requeued


async def requeue_failed(session: AsyncSession) -> int:
    """Put every failed embedding back in the queue at once (and wake the workers everywhere)."""
    result = await session.execute(_REQUEUE_FAILED_SQL)
    requeued = int(getattr(result, "rowcount", 0) or 0)
    if requeued:
        await queue.notify(session, EMBEDDING_STAGE)
    return requeued


async def heartbeat(session: AsyncSession, *, state: dict[str, Any]) -> None:
    """Upsert this worker's row in worker_states."""
    await session.execute(_HEARTBEAT_SQL, state)


async def forget_worker(session: AsyncSession, *, worker_id: str) -> None:
    await session.execute(text("DELETE FROM worker_states WHERE id = :id"), {"id": worker_id})


# --- vibe texts ---------------------------------------------------------------------------

_CACHED_TEXT_SQL = text(
    "SELECT status, embedding, error, model FROM text_embeddings WHERE text_norm = :norm"
).columns(embedding=Vector(EMBEDDING_DIM))

_STORE_TEXT_SQL = text(
    """
    INSERT INTO text_embeddings (text_norm, text, status, embedding, model, error, done_at)
    VALUES (:norm, :text, 'done', :embedding, :model, NULL, now())
    ON CONFLICT (text_norm) DO UPDATE SET
        status = 'done', embedding = EXCLUDED.embedding, model = EXCLUDED.model,
        error = NULL, done_at = EXCLUDED.done_at, attempts = 0, next_at = NULL,
        lease_until = NULL, lease_owner = NULL
    """
).bindparams(bindparam("embedding", type_=Vector(EMBEDDING_DIM)))

_STORE_CLAIMED_TEXT_SQL = text(
    """
    UPDATE text_embeddings SET embedding = :embedding, model = :model, done_at = now()
    WHERE text_norm = :norm
    """
).bindparams(bindparam("embedding", type_=Vector(EMBEDDING_DIM)))

# A failed text is asked for again (the failure may have been the worker's, not the text's),
# and so is one a different model embedded.
_REQUEST_TEXT_SQL = text(
    """
    INSERT INTO text_embeddings (text_norm, text, status)
    VALUES (:norm, :text, 'pending')
    ON CONFLICT (text_norm) DO UPDATE SET status = 'pending', error = NULL, requested_at = now(),
        attempts = 0, next_at = NULL
        WHERE text_embeddings.status = 'failed'
           OR (CAST(:model AS text) IS NOT NULL AND text_embeddings.status = 'done'
               AND text_embeddings.model IS DISTINCT FROM :model)
    """
)

_LIVE_WORKERS_SQL = text(
    """
    SELECT state, model, model_loaded, last_error, details FROM worker_states
    WHERE heartbeat_at > now() - make_interval(secs => :stale_seconds)
    ORDER BY heartbeat_at DESC
    """
)


# What the live workers running `model` found when they checked its text tower.
_TEXT_TOWER_SQL = text(
    """
    SELECT bool_or(text_tower_ok) AS any_ok, count(text_tower_ok) AS checked FROM worker_states
    WHERE heartbeat_at > now() - make_interval(secs => :stale_seconds)
      AND model_loaded AND model = :model
    """
)


async def text_tower_ok(session: AsyncSession, *, model: str, stale_seconds: float) -> bool | None:
    """True when a live worker running `model` found its text tower healthy, False when the live
    ones that checked found it collapsed, None when none has checked."""
    row = (await session.execute(_TEXT_TOWER_SQL, {"model": model, "stale_seconds": stale_seconds})).one()
    return None if not row.checked else bool(row.any_ok)


async def cached_text(session: AsyncSession, *, text_norm: str) -> dict[str, Any] | None:
    row = (await session.execute(_CACHED_TEXT_SQL, {"norm": text_norm})).mappings().first()
    return None if row is None else dict(row)


async def store_text(
    session: AsyncSession, *, text_norm: str, text: str, embedding: np.ndarray, model: str | None
) -> None:
    """Cache a text's vector embedded in-process (no claim involved)."""
    await session.execute(
        _STORE_TEXT_SQL, {"norm": text_norm, "text": text, "embedding": embedding, "model": model}
    )


async def store_claimed_text(
    session: AsyncSession, *, text_norm: str, embedding: np.ndarray, model: str | None
) -> None:
    """Save a leased text's vector (after the queue confirmed the claim was still held)."""
    await session.execute(
        _STORE_CLAIMED_TEXT_SQL, {"norm": text_norm, "embedding": embedding, "model": model}
    )


async def request_text(session: AsyncSession, *, text_norm: str, text: str, model: str | None = None) -> None:
    """Queue a text for the workers (again, when it failed or a different model embedded it)."""
    await session.execute(_REQUEST_TEXT_SQL, {"norm": text_norm, "text": text, "model": model})
    await queue.notify(session, TEXT_STAGE)


async def live_workers(session: AsyncSession, *, stale_seconds: float) -> list[dict[str, Any]]:
    """Workers that reported within `stale_seconds`, newest first."""
    rows = await session.execute(_LIVE_WORKERS_SQL, {"stale_seconds": stale_seconds})
    return [dict(r) for r in rows.mappings()]


def details_json(details: dict[str, Any]) -> str:
    return json.dumps(details, default=str)


def _vector_literal(vector: np.ndarray) -> str:
    # pgvector's text input format; avoids registering codecs on every pooled connection.
    return "[" + ",".join(f"{float(x):.8g}" for x in np.asarray(vector, dtype=np.float32).ravel()) + "]"
