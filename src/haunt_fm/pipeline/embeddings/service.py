"""Embedding rules a person can invoke (the batch work itself is the worker's, `worker/embedding.py`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm.pipeline.embeddings import repository


async def retry_failed(session: AsyncSession) -> int:
    """Put every failed embedding back in the queue now (tracks without a preview wait for one)."""
    return await repository.requeue_failed(session)
