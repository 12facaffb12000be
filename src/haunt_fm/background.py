"""Background loops that run inside `serve`: preview lookup, the embedding worker, and the
reconciliation of listens from Home Assistant's history."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from haunt_fm.config import Settings

log = logging.getLogger(__name__)


def start(app: FastAPI, settings: Settings) -> list[asyncio.Task[None]]:
    """Start the loops the settings enable; returns their tasks."""
    tasks: list[asyncio.Task[None]] = []
    if settings.embedding_worker_enabled:
        from haunt_fm.worker.embedding import EmbeddingWorker

        worker = EmbeddingWorker(
            settings=settings,
            session_factory=app.state.session_factory,
            http=app.state.http,
            # Vibe texts are then embedded in-process, without a round trip through the queue.
            on_model_loaded=lambda embedder: setattr(app.state, "embedder", embedder),
        )
        app.state.embedding_worker = worker
        tasks.append(asyncio.create_task(worker.run_forever(), name="embedding-worker"))
    if settings.preview_worker_enabled:
        from haunt_fm.pipeline.previews.tasks import PreviewLookup

        lookup = PreviewLookup(
            settings=settings, session_factory=app.state.session_factory, http=app.state.http
        )
        app.state.preview_lookup = lookup
        tasks.append(asyncio.create_task(lookup.run_forever(), name="preview-lookup"))
    if settings.ha_configured and settings.ha_reconcile_minutes > 0:
        tasks.append(asyncio.create_task(_reconcile_forever(app, settings), name="ha-reconcile"))
    return tasks


async def _reconcile_forever(app: FastAPI, settings: Settings) -> None:
    """Recover missed listens from Home Assistant's history now and every HAUNTFM_HA_RECONCILE_MINUTES.

    A plain loop until the job queue takes periodic jobs; a run records its own outcome.
    """
    from haunt_fm.clients.homeassistant.client import HomeAssistantClient
    from haunt_fm.pipeline.listens.reconcile import reconcile

    client = HomeAssistantClient(settings.ha_url or "", settings.ha_token, http=app.state.http)
    while True:
        try:
            await reconcile(session_factory=app.state.session_factory, settings=settings, client=client)
        except Exception:  # the database away for a moment must not end the loop
            log.exception("reconciliation from Home Assistant's history failed")
        await asyncio.sleep(settings.ha_reconcile_minutes * 60)


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the loops and wait for them to finish their current step."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
