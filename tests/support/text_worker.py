"""A real embedding worker whose model is a stand-in text tower: it embeds queued vibe texts.

It heart-beats like any worker (so API processes see a worker with a model) and embeds
through the worker's own `process_texts`, i.e. the real claim/lease/settle path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.worker.embedding import EmbeddingWorker
from tests.conftest import make_settings


async def text_worker(
    db: async_sessionmaker[AsyncSession], model: Any, *, tmp_path: Path, pg_url: str, limit: int = 32
) -> EmbeddingWorker:
    """A worker holding `model`, registered (heartbeat) so requests know a worker can embed."""
    settings = make_settings(tmp_path, pg_url, embedding_worker_enabled=True)
    worker = EmbeddingWorker(settings=settings, session_factory=db, http=httpx.AsyncClient())
    worker.embedder = model
    worker.text_tower_ok = True  # the stand-in's text tower is healthy: vibe texts are used
    worker.texts.batch = limit
    await worker.heartbeat(force=True)
    return worker
