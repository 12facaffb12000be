"""Test fixtures: one embedded PostgreSQL for the session, a clean schema per test,
and the app served by uvicorn on 127.0.0.1 (tests talk real HTTP to it)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

# Tests configure the service explicitly; nothing from the developer's shell leaks in.
for _key in [k for k in os.environ if k.startswith("HAUNTFM_")]:
    del os.environ[_key]

from haunt_fm.app import create_app  # noqa: E402
from haunt_fm.config import Settings  # noqa: E402
from haunt_fm.db.embedded import EmbeddedPostgres  # noqa: E402
from haunt_fm.db.migrate import upgrade  # noqa: E402
from haunt_fm.db.session import create_engine, create_session_factory  # noqa: E402
from tests.support.live_server import LiveServer  # noqa: E402

_TABLES = (
    "playlist_tracks, playlists, feedback, listen_events, track_similarities, track_embeddings, "
    "text_embeddings, worker_states, app_state, speaker_mappings, tracks, profiles, jobs, rate_limits, "
    "imports"
)


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded PostgreSQL 18 + pgvector, schema built by the real migrations."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    url = server.start()
    try:
        upgrade(url)
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(pg_url, pool_size=5)
    yield eng
    await eng.dispose()


async def reset_database(eng: AsyncEngine) -> None:
    async with eng.begin() as conn:
        await conn.execute(text(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE"))
        await conn.execute(text("INSERT INTO profiles (name, display_name) VALUES ('default', 'Default')"))


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A clean database (default profile only); yields a session factory for direct checks."""
    await reset_database(engine)
    yield create_session_factory(engine)


def make_settings(tmp_path: Path, pg_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": pg_url,
        "data_dir": tmp_path / "data",
        "embedding_worker_enabled": False,
        "preview_worker_enabled": False,
        "lastfm_api_key": None,
        "ha_url": None,
        "ha_token": None,
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


@pytest.fixture
def settings_factory(tmp_path: Path, pg_url: str) -> Callable[..., Settings]:
    return lambda **overrides: make_settings(tmp_path, pg_url, **overrides)


@pytest.fixture
def serve(db: Any, pg_url: str, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start the app with the given settings overrides; returns its base URL."""
    servers: list[LiveServer] = []

    def _serve(*, start_background: bool = False, **overrides: Any) -> str:
        settings = make_settings(tmp_path, pg_url, **overrides)
        app = create_app(settings, database_url=pg_url, start_background=start_background)
        server = LiveServer(app).start()
        servers.append(server)
        return server.url

    yield _serve
    for server in servers:
        server.stop()


@pytest.fixture
async def client(serve: Callable[..., str]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app with default test settings."""
    async with httpx.AsyncClient(base_url=serve(), timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLAP checkpoint saved with save_pretrained (built once per session)."""
    from tests.support.tiny_clap import build_tiny_clap  # torch import only when a test needs it

    return build_tiny_clap(tmp_path_factory.mktemp("tiny_clap"))
