"""The edge's one factory: settings, engine, session factory, HTTP client and queue wake-ups.

`serve` (the app's lifespan), `haunt-fm worker` and every CLI command that touches the
database open exactly one `Runtime` and close it when they end. Nothing else creates an
engine or an HTTP client, so every outgoing request carries the project's User-Agent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from haunt_fm.clients._http import new_http_client
from haunt_fm.config import Settings
from haunt_fm.db.session import create_engine, create_session_factory, to_libpq_dsn
from haunt_fm.queue import Wakeups


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a running process shares: one engine, one session factory, one HTTP client."""

    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    wakeups: Wakeups


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, database_url: str, pool_size: int = 40, listen: bool = True
) -> AsyncIterator[Runtime]:
    """Open the process's runtime; `listen` starts the LISTEN connection that wakes workers."""
    engine = create_engine(database_url, pool_size=pool_size)
    http = new_http_client()
    wakeups = Wakeups(to_libpq_dsn(database_url) if listen else None)
    await wakeups.start()
    try:
        yield Runtime(
            settings=settings,
            database_url=database_url,
            engine=engine,
            sessions=create_session_factory(engine),
            http=http,
            wakeups=wakeups,
        )
    finally:
        await wakeups.stop()
        await http.aclose()
        await engine.dispose()
