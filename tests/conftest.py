"""Test fixtures: one embedded PostgreSQL for the session, a clean schema per test,
and the app served by uvicorn on 127.0.0.1 (tests talk real HTTP to it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.support.env import make_hermetic

# Tests configure the service explicitly: nothing from the developer's shell or the project's
# `.env` leaks in, here or in the processes tests start (they inherit this environment).
make_hermetic()

from haunt_fm import models  # noqa: E402, F401  - registers every table in Base.metadata
from haunt_fm.app import create_app  # noqa: E402
from haunt_fm.config import Settings  # noqa: E402
from haunt_fm.db.base import Base  # noqa: E402
from haunt_fm.db.embedded import EmbeddedPostgres  # noqa: E402
from haunt_fm.db.migrate import upgrade  # noqa: E402
from haunt_fm.db.session import create_engine, create_session_factory  # noqa: E402
from tests.support.live_server import LiveServer  # noqa: E402

# Every table the models declare (alembic_version is not one of them), so a new table is
# reset between tests without anyone remembering to list it here.
_TABLES = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)


_OWN_BASETEMP = pytest.StashKey[Path]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Each run gets its own base temporary directory (unless --basetemp says otherwise).

    Run as root, the embedded PostgreSQL runs as its own OS user, which must traverse the
    folders above its data directory. Under the shared /tmp/pytest-of-<user>, any other
    pytest session starting on the machine resets that folder to 0700 and the running
    server loses its data directory mid-run ("could not stat data directory").
    """
    if config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix="haunt-fm-tests-")
        config.stash[_OWN_BASETEMP] = Path(config.option.basetemp)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove our own base temporary directory after a passing run (kept to look at otherwise)."""
    own = session.config.stash.get(_OWN_BASETEMP, None)
    if own is not None and exitstatus == 0:
        shutil.rmtree(own, ignore_errors=True)


def reachable(path: Path) -> Path:
    """Let other users traverse the test temp dirs down to `path` (pytest makes them 0700).

    As root, the embedded PostgreSQL runs as an unprivileged user, and haunt-fm refuses to
    change permissions of directories it didn't create: the tests open their own dirs.
    """
    if os.geteuid() == 0:
        root = Path(tempfile.gettempdir()).resolve()
        for directory in [path, *path.parents]:
            if directory == root or directory == directory.parent:
                break
            directory.chmod(directory.stat().st_mode | 0o011)
    return path


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    return reachable(tmp_path)


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded PostgreSQL 18 + pgvector, schema built by the real migrations."""
    server = EmbeddedPostgres(reachable(tmp_path_factory.mktemp("pg")))
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
    # A server stopped while one of its connections was still being set up (asyncpg's type
    # introspection runs in a transaction) leaves that session idle in transaction, holding
    # locks, with no event loop left to close it: TRUNCATE would wait for it forever. Such a
    # session is ended once it has waited on its client for a few seconds; anything else
    # still in the way fails the test after a minute instead of hanging the run.
    for lock_timeout in ("5s", "60s"):
        try:
            async with eng.begin() as conn:
                await conn.execute(text(_END_ABANDONED_SQL))
                await conn.execute(text(f"SET LOCAL lock_timeout = '{lock_timeout}'"))
                await conn.execute(text(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE"))
                await conn.execute(text(_DEFAULT_PROFILE_SQL))
            return
        except DBAPIError as exc:
            if "lock timeout" not in str(exc) or lock_timeout == "60s":
                raise


_DEFAULT_PROFILE_SQL = "INSERT INTO profiles (name, display_name) VALUES ('default', 'Default')"
# Waiting on its client inside a transaction for seconds: idle in transaction, or "active"
# halfway through a statement the client never finished sending.
_END_ABANDONED_SQL = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND state IN ('idle in transaction', 'active') AND wait_event = 'ClientRead' "
    "AND state_change < now() - interval '3 seconds'"
)


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
        # PyTorch unless a test asks for ONNX: an export costs seconds per fresh data dir.
        "embedding_runtime": "torch",
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


@pytest.fixture(scope="session")
def onnx_model_cache(tiny_clap_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache with the tiny model's ONNX towers exported, gated and timed (copy it to change it)."""
    from haunt_fm.pipeline.embeddings.model import ClapEmbedder

    root = tmp_path_factory.mktemp("onnx_model_cache")
    ClapEmbedder.load(str(tiny_clap_dir), cache_dir=root, torch_threads=2, runtime="auto")
    return root


@pytest.fixture(scope="session")
def tiny_clap_collapsed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint with a collapsed text tower (same audio tower): every text, one vector."""
    from tests.support.tiny_clap import build_tiny_clap

    return build_tiny_clap(tmp_path_factory.mktemp("tiny_clap_collapsed"), collapsed_text=True)
