"""Request dependencies. The session commits when the handler succeeds (transactions at the edge)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from haunt_fm.config import Settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    factory = request.app.state.session_factory
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def get_autocommit(request: Request) -> AsyncIterator[AsyncConnection]:
    """A connection in autocommit mode, for endpoints whose every write is one atomic statement.

    The listen webhook is the hot path: skipping BEGIN/COMMIT saves two round trips per call.
    """
    async with request.app.state.engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


def get_session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    """For endpoints that commit in steps of their own (never across a call to an outside service)."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    return factory


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# scope="function": commit BEFORE the response is sent (FastAPI's default, "request", commits
# after it, so a client could read its own write too early and never hear of a failed commit).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
AutocommitDep = Annotated[AsyncConnection, Depends(get_autocommit, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)]
