"""Background loops that run inside `serve`: preview lookup, the embedding worker, tags, radios,
and jobs (scheduled discovery, reconciliation from Home Assistant's history, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from haunt_fm.runtime import Runtime

log = logging.getLogger(__name__)


def start(app: FastAPI, runtime: Runtime) -> list[asyncio.Task[None]]:
    """Start the loops the settings enable; returns their tasks."""
    settings = runtime.settings
    tasks: list[asyncio.Task[None]] = []
    if settings.embedding_worker_enabled:
        from haunt_fm.worker.embedding import EmbeddingWorker

        worker = EmbeddingWorker(
            settings=settings,
            session_factory=runtime.sessions,
            http=runtime.http,
            wakeups=runtime.wakeups,
            # Vibe texts are then embedded in-process, without a round trip through the queue.
            on_model_loaded=lambda embedder: setattr(app.state, "embedder", embedder),
        )
        app.state.embedding_worker = worker
        tasks.append(asyncio.create_task(worker.run_forever(), name="embedding-worker"))
    if settings.preview_worker_enabled:
        from haunt_fm.pipeline.previews.tasks import PreviewLookup

        lookup = PreviewLookup(
            settings=settings, session_factory=runtime.sessions, http=runtime.http, wakeups=runtime.wakeups
        )
        app.state.preview_lookup = lookup
        tasks.append(asyncio.create_task(lookup.run_forever(), name="preview-lookup"))
    # Radio: keeps each active radio ahead of its listener (pipeline/radio/tasks.py).
    from haunt_fm.pipeline.radio.tasks import RadioRunner
    from haunt_fm.pipeline.recommendations.vibe import get_vibe_encoder_for

    radio = RadioRunner(
        settings=settings,
        sessions=runtime.sessions,
        vibe_encoder=lambda: get_vibe_encoder_for(app.state),
        wakeups=runtime.wakeups,
    )
    app.state.radio_runner = radio
    tasks.append(asyncio.create_task(radio.run_forever(), name="radio"))
    if settings.lastfm_configured:
        from haunt_fm.pipeline.tags.tasks import TagFetcher

        fetcher = TagFetcher(
            settings=settings, session_factory=runtime.sessions, http=runtime.http, wakeups=runtime.wakeups
        )
        app.state.tag_fetcher = fetcher
        tasks.append(asyncio.create_task(fetcher.run_forever(), name="tags"))
    from haunt_fm.worker.jobs import job_runner

    runner = job_runner(runtime)
    app.state.job_runner = runner
    if runner is not None:
        tasks.append(asyncio.create_task(runner.run_forever(), name="jobs"))
    return tasks


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the loops and wait for them to finish their current step."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
