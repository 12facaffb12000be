"""Run Alembic migrations programmatically (serve, worker, `db upgrade`, tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from haunt_fm.db.session import redact_url, to_async_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class PgvectorMissing(RuntimeError):
    """The PostgreSQL server has no pgvector extension available."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    return cfg


async def _check_pgvector(url: str) -> None:
    engine = create_async_engine(to_async_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            available = await conn.scalar(
                text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
            )
    finally:
        await engine.dispose()
    if not available:
        raise PgvectorMissing(
            f"The PostgreSQL server at {redact_url(url)} does not have the pgvector extension. "
            "Install pgvector there (e.g. use the pgvector/pgvector:pg17 image), or unset "
            "HAUNTFM_DATABASE_URL to use the embedded PostgreSQL with pgvector."
        )


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` to `revision` (blocking; call from a thread if async)."""
    asyncio.run(_check_pgvector(url))
    command.upgrade(alembic_config(url), revision)
