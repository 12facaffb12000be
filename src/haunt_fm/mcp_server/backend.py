"""What the tools need from the process they run in: `serve`'s app, or the `haunt-fm mcp` runtime."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.config import Settings
from haunt_fm.pipeline.recommendations.vibe import VibeEncoder, get_vibe_encoder_for, make_vibe_encoder
from haunt_fm.runtime import Runtime


class Backend(Protocol):
    """The settings, sessions and vibe encoder the tools call the services with."""

    @property
    def settings(self) -> Settings: ...

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...

    def vibe_encoder(self) -> VibeEncoder: ...

    def local_worker(self) -> Any:
        """The embedding worker running in this process, if any (for the status)."""

    def database_away(self) -> str | None:
        """Why the database is known to be away right now (the supervisor restarts it), or None."""


class AppBackend:
    """The running `serve` app: read from `app.state` at each call (the lifespan fills it)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    @property
    def settings(self) -> Settings:
        settings: Settings = self._app.state.settings
        return settings

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        factory: async_sessionmaker[AsyncSession] = self._app.state.session_factory
        return factory

    def vibe_encoder(self) -> VibeEncoder:
        # The app's model when `serve` runs the embedding worker in-process; else the queue.
        return get_vibe_encoder_for(self._app.state)

    def local_worker(self) -> Any:
        return getattr(self._app.state, "embedding_worker", None)

    def database_away(self) -> str | None:
        away: str | None = getattr(self._app.state, "db_away", None)
        return away


class RuntimeBackend:
    """A CLI process (`haunt-fm mcp`): no model of its own, so new vibe texts go to the worker queue."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @property
    def settings(self) -> Settings:
        return self._runtime.settings

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self._runtime.sessions

    def vibe_encoder(self) -> VibeEncoder:
        return make_vibe_encoder(self.settings, self._runtime.sessions, wakeups=self._runtime.wakeups)

    def local_worker(self) -> Any:
        return None

    def database_away(self) -> str | None:
        return None
