"""Shared by the import tests: export files, waiting for an import, and counting what it stored."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.app import create_app
from tests.conftest import make_settings
from tests.discovery.support import LASTFM_KEY
from tests.support.live_server import LiveServer
from tests.support.waiting import eventually_async

BASE_UTS = 1_700_000_000


def lastfm_settings(lastfm: Any, **overrides: Any) -> dict[str, Any]:
    """Settings pointing the app at the Last.fm stand-in, at a rate that keeps tests quick."""
    return {
        "lastfm_api_key": LASTFM_KEY,
        "lastfm_api_url": lastfm.api_url,
        "lastfm_rate_per_second": 50.0,
    } | (overrides)


def listen_json(uts: int, artist: str, title: str, album: str | None = None, **info: Any) -> dict[str, Any]:
    """One ListenBrainz export entry."""
    metadata: dict[str, Any] = {"artist_name": artist, "track_name": title}
    if album is not None:
        metadata["release_name"] = album
    if info:
        metadata["additional_info"] = info
    return {"listened_at": uts, "track_metadata": metadata}


def distinct_listens(count: int, *, start: int = BASE_UTS, tracks: int = 50) -> list[dict[str, Any]]:
    """`count` listens 10 minutes apart over `tracks` songs (none within 60 s of another)."""
    return [
        listen_json(start + 600 * i, f"Artist {i % tracks % 17}", f"Song {i % tracks}", f"Album {i % 7}")
        for i in range(count)
    ]


def write_jsonl(path: Path, entries: Iterable[dict[str, Any] | str]) -> Path:
    """JSON lines; a str entry is written as it is (a malformed line)."""
    with path.open("w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write((entry if isinstance(entry, str) else json.dumps(entry)) + "\n")
    return path


async def wait_import(
    http: httpx.AsyncClient, import_id: int, *, seconds: float = 60.0, until: Any = None
) -> dict[str, Any]:
    """Poll the import until it is no longer running (or `until(doc)` holds)."""

    async def there() -> dict[str, Any] | None:
        response = await http.get(f"/api/admin/imports/{import_id}")
        assert response.status_code == 200, response.text
        doc: dict[str, Any] = response.json()
        return doc if (until(doc) if until is not None else doc["status"] != "running") else None

    return await eventually_async(there, what=f"import {import_id}", seconds=seconds)


async def scalar(sessions: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> Any:
    async with sessions() as session:
        return (await session.execute(text(sql), params)).scalar_one()


async def listens_by_source(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(text("SELECT source, count(*) FROM listen_events GROUP BY source"))
        return {r[0]: int(r[1]) for r in rows}


async def assert_no_duplicated_listens(sessions: async_sessionmaker[AsyncSession]) -> None:
    """No two listens of one track by one profile within 60 s of each other (nor identical)."""
    clashes = await scalar(
        sessions,
        """
        SELECT count(*) FROM listen_events a JOIN listen_events b
          ON a.track_id = b.track_id AND a.profile_id = b.profile_id AND a.id < b.id
         AND abs(extract(epoch FROM a.played_at - b.played_at)) < 60
        """,
    )
    assert clashes == 0


@contextlib.contextmanager
def app_server(tmp_path: Path, pg_url: str, **overrides: Any) -> Iterator[LiveServer]:
    """The app with its job runner, on its own server that a test may stop mid-import (a restart)."""
    settings = make_settings(tmp_path, pg_url, **overrides)
    server = LiveServer(create_app(settings, database_url=pg_url, start_background=True)).start()
    try:
        yield server
    finally:
        server.stop()
