"""create_app(): the FastAPI application. The lifespan opens the engine and HTTP clients."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from haunt_fm import __version__
from haunt_fm.config import Settings
from haunt_fm.db.embedded import EmbeddedPostgres
from haunt_fm.db.supervisor import DatabaseSupervisor
from haunt_fm.errors import install_error_handlers
from haunt_fm.middleware import DatabaseAwayMiddleware, RequestGuardMiddleware, TokenAuthMiddleware
from haunt_fm.openapi import install_openapi
from haunt_fm.runtime import Runtime, open_runtime

log = logging.getLogger(__name__)

DESCRIPTION = """
Personal music recommendation engine: Home Assistant reports listens, Last.fm finds
similar music, iTunes supplies 30-second previews, CLAP embeds them into pgvector, and
each profile gets recommendations and playlists played through Music Assistant.

When `HAUNTFM_API_TOKEN` is set every `/api/*` call needs `Authorization: Bearer <token>`.

Assistants reach the same services through MCP (Model Context Protocol, streamable HTTP) at
`/mcp`, behind the same token; `haunt-fm mcp` serves them over stdio.
"""


def create_app(
    settings: Settings,
    *,
    database_url: str,
    start_background: bool = True,
    embedded: EmbeddedPostgres | None = None,
    on_fatal: Callable[[str], None] | None = None,
) -> FastAPI:
    """Build the app against `database_url` (schema already upgraded).

    `embedded`: the embedded server this process owns; it is supervised (restarted when it
    dies; `on_fatal` is called with a sentence when it can't come back).
    """

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
            if embedded is not None:
                tasks.append(
                    asyncio.create_task(_supervise(app, runtime, embedded, on_fatal), name="db-supervisor")
                )
            # Everything loaded so far (modules, the app, the model when in-process) lives for
            # the whole run: move it out of the GC's sight, or each full collection walks it
            # all and stalls every request in flight (seen as ~100 ms p99 spikes under load).
            gc.collect()
            gc.freeze()
            try:
                async with mcp_sessions.run():
                    yield
            finally:
                await background.stop(tasks)

    # /docs and /redoc serve Swagger UI and ReDoc from the installed fastapi-offline package, not a
    # CDN: they work on a LAN without internet.
    app = FastAPIOffline(
        title="haunt-fm",
        swagger_ui_parameters={"persistAuthorization": True},
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db_away = None
    install_error_handlers(app)
    install_openapi(app)
    _include_routers(app)
    from haunt_fm.mcp_server.server import mount as mount_mcp
    from haunt_fm.pipeline.imports.router import LISTENBRAINZ_PATH

    mcp_sessions = mount_mcp(app)  # /mcp: the tools for assistants (MCP over streamable HTTP)
    # Export uploads stream to disk under their own cap; every other body is small.
    app.add_middleware(RequestGuardMiddleware, streamed={LISTENBRAINZ_PATH: settings.import_max_bytes})
    app.add_middleware(DatabaseAwayMiddleware)
    app.add_middleware(
        TokenAuthMiddleware, token=settings.api_token.get_secret_value() if settings.api_token else None
    )
    return app


def _include_routers(app: FastAPI) -> None:
    # In pipeline order: listen -> discovery -> taste -> recommendations/feedback -> playlists -> radio.
    from haunt_fm.pipeline.discovery.router import router as discovery
    from haunt_fm.pipeline.feedback.router import router as feedback
    from haunt_fm.pipeline.imports.router import router as imports
    from haunt_fm.pipeline.listens.router import router as listens
    from haunt_fm.pipeline.playlists.router import router as playlists
    from haunt_fm.pipeline.profiles.router import router as profiles
    from haunt_fm.pipeline.radio.router import router as radio
    from haunt_fm.pipeline.recommendations.router import router as recommendations
    from haunt_fm.pipeline.status.router import router as status
    from haunt_fm.pipeline.tags.router import router as tags
    from haunt_fm.pipeline.taste.router import router as taste
    from haunt_fm.web.router import router as web

    for router in (
        status, listens, imports, profiles, discovery, tags, taste, recommendations, feedback, playlists,
        radio, web,
    ):  # fmt: skip
        app.include_router(router)


async def _supervise(
    app: FastAPI, runtime: Runtime, embedded: EmbeddedPostgres, on_fatal: Callable[[str], None] | None
) -> None:
    """Restart the embedded PostgreSQL when it dies; answer 503 meanwhile."""

    def down(message: str) -> None:
        app.state.db_away = message

    async def up() -> None:
        # Every pooled connection died with the old server.
        await runtime.engine.dispose()
        app.state.db_away = None

    def fatal(message: str) -> None:
        app.state.db_away = message
        log.critical("%s", message)
        if on_fatal is not None:
            on_fatal(message)

    await DatabaseSupervisor(embedded, on_down=down, on_up=up, on_fatal=fatal).run()
