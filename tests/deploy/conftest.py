"""Deployment checks: a fresh, empty database on the session's embedded server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from haunt_fm.db.session import to_async_url


@pytest.fixture
async def empty_database_url(pg_url: str) -> AsyncIterator[str]:
    """A new database with no schema on the test server, dropped afterwards."""
    name = f"deploy_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(to_async_url(pg_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()
