"""create_app(): the FastAPI application. The lifespan opens the engine and HTTP clients."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from haunt_fm import __version__
from haunt_fm.config import Settings
from haunt_fm.errors import install_error_handlers
from haunt_fm.middleware import RequestGuardMiddleware, TokenAuthMiddleware
from haunt_fm.runtime import open_runtime

log = logging.getLogger(__name__)

DESCRIPTION = """
Personal music recommendation engine: Home Assistant reports listens, Last.fm finds
similar music, iTunes supplies 30-second previews, CLAP embeds them into pgvector, and
each profile gets recommendations and playlists played through Music Assistant.

When `HAUNTFM_API_TOKEN` is set every `/api/*` call needs `Authorization: Bearer <token>`.
"""


def create_app(settings: Settings, *, database_url: str, start_background: bool = True) -> FastAPI:
    """Build the app against `database_url` (schema already upgraded)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, database_url=database_url, listen=start_background) as runtime:
            app.state.runtime = runtime
            app.state.engine = runtime.engine
            app.state.session_factory = runtime.sessions
            app.state.http = runtime.http
            app.state.wakeups = runtime.wakeups
            app.state.embedding_worker = None
            app.state.embedder = None
            from haunt_fm import background

            tasks = background.start(app, runtime) if start_background else []
            # Everything loaded so far (modules, the app, the model when in-process) lives for
            # the whole run: move it out of the GC's sight, or each full collection walks it
            # all and stalls every request in flight (seen as ~100 ms p99 spikes under load).
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                await background.stop(tasks)

    app = FastAPI(
        title="haunt-fm",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    _include_routers(app)
    from haunt_fm.pipeline.imports.router import LISTENBRAINZ_PATH

    # Export uploads stream to disk under their own cap; every other body is small.
    app.add_middleware(RequestGuardMiddleware, streamed={LISTENBRAINZ_PATH: settings.import_max_bytes})
    app.add_middleware(
        TokenAuthMiddleware, token=settings.api_token.get_secret_value() if settings.api_token else None
    )
    return app


def _include_routers(app: FastAPI) -> None:
    # In pipeline order: listen -> discovery -> taste -> recommendations/feedback -> playlists.
    from haunt_fm.pipeline.discovery.router import router as discovery
    from haunt_fm.pipeline.feedback.router import router as feedback
    from haunt_fm.pipeline.imports.router import router as imports
    from haunt_fm.pipeline.listens.router import router as listens
    from haunt_fm.pipeline.playlists.router import router as playlists
    from haunt_fm.pipeline.profiles.router import router as profiles
    from haunt_fm.pipeline.recommendations.router import router as recommendations
    from haunt_fm.pipeline.status.router import router as status
    from haunt_fm.pipeline.taste.router import router as taste
    from haunt_fm.web.router import router as web

    for router in (
        status,
        listens,
        imports,
        profiles,
        discovery,
        taste,
        recommendations,
        feedback,
        playlists,
        web,
    ):
        app.include_router(router)
