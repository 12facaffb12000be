"""Engine and session factory. Transactions belong to the edge (request or job block)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def to_async_url(url: str) -> str:
    """Accept postgres://, postgresql:// or postgresql+asyncpg:// and return the asyncpg form."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("HAUNTFM_DATABASE_URL must be a postgresql:// URL")


def to_libpq_dsn(url: str) -> str:
    """The URL as a plain `postgresql://` DSN (for asyncpg.connect, psql, pg_dump)."""
    return "postgresql://" + to_async_url(url)[len("postgresql+asyncpg://") :]


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to print."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def create_engine(url: str, *, pool_size: int = 40) -> AsyncEngine:
    # Overflow connections are closed as soon as they are returned, and a new PostgreSQL
    # connection forks a backend: under webhook bursts a small pool churns. Idle pooled
    # connections are cheap, so the API keeps enough for its concurrency.
    return create_async_engine(
        to_async_url(url),
        pool_size=pool_size,
        max_overflow=10,
        # No pre-ping: it costs a round trip per request on the hot webhook path. A dead
        # connection fails one statement, is invalidated, and the pool reconnects.
        pool_recycle=1800,
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session that commits on success and rolls back on error (for jobs and CLI)."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
