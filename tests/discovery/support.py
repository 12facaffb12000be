"""Shared by tests/discovery and tests/previews: the Last.fm and iTunes stand-ins, listens over
HTTP, and a preview lookup loop with test-sized backoffs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.clients._http import RetryPolicy
from haunt_fm.clients.itunes import ItunesClient
from haunt_fm.config import Settings
from haunt_fm.pipeline.previews.tasks import PreviewLookup
from tests.fakes import FakeItunes, FakeLastfm
from tests.support.limiter import StepLimiter

LASTFM_KEY = "test-lastfm-key-0123456789abcdef"
FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05, jitter=0)


@pytest.fixture(scope="session")
def lastfm_server() -> Iterator[FakeLastfm]:
    with FakeLastfm(api_key=LASTFM_KEY, similar_count=20) as fake:
        yield fake


@pytest.fixture
def lastfm(lastfm_server: FakeLastfm) -> FakeLastfm:
    lastfm_server.reset()
    return lastfm_server


@pytest.fixture(scope="session")
def itunes_server() -> Iterator[FakeItunes]:
    with FakeItunes() as fake:
        yield fake


@pytest.fixture
def itunes(itunes_server: FakeItunes) -> FakeItunes:
    itunes_server.reset()
    return itunes_server


def discovery_settings(lastfm: FakeLastfm, itunes: FakeItunes, **overrides: Any) -> dict[str, Any]:
    """Settings overrides pointing the app at the stand-ins, with rates that keep tests fast."""
    return {
        "lastfm_api_key": LASTFM_KEY,
        "lastfm_api_url": lastfm.api_url,
        "lastfm_rate_per_second": 200.0,
        "itunes_api_url": itunes.url,
        "itunes_rate_per_minute": 12_000.0,
        **overrides,
    }


_PLAYED = datetime(2026, 1, 1, tzinfo=UTC)


async def listen(
    http: httpx.AsyncClient, artist: str, title: str, *, profile: str | None = None, minutes: int = 0
) -> int:
    """Log one listen over HTTP; returns the track id."""
    body: dict[str, Any] = {
        "artist": artist,
        "title": title,
        "played_at": (_PLAYED + timedelta(minutes=minutes)).isoformat(),
    }
    if profile is not None:
        body["profile"] = profile
    response = await http.post("/api/history/webhook", json=body)
    assert response.status_code in (200, 201), response.text
    return int(response.json()["track_id"])


def stock(
    itunes: FakeItunes, tracks: Iterable[tuple[str, str]], *, absent: Iterable[tuple[str, str]] = ()
) -> dict[tuple[str, str], int]:
    """Put the songs (each with its karaoke/tribute/cover decoys listed first) in the fake store.

    Songs in `absent` get only their decoys. Returns (artist, title) -> the real song's trackId.
    """
    absent = set(absent)
    ids: dict[tuple[str, str], int] = {}
    for artist, title in tracks:
        track_id = itunes.add_track(artist, title, in_store=(artist, title) not in absent)
        if (artist, title) not in absent:
            ids[(artist, title)] = track_id
    return ids


def preview_loop(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    itunes: FakeItunes,
    http: httpx.AsyncClient,
    **overrides: Any,
) -> PreviewLookup:
    """A preview lookup stage on the fake store with millisecond backoffs."""
    limiter = StepLimiter.per_minute(overrides.pop("rate_per_minute", 12_000.0))
    client = ItunesClient(itunes.url, http=http, limiter=limiter, retry=overrides.pop("retry", FAST))
    options: dict[str, Any] = {
        "concurrency": 4,
        "poll_seconds": 0.02,
        "retry_base_seconds": 0.02,
        "retry_max_seconds": 0.1,
        "throttle_pause_seconds": 0.05,
        **overrides,
    }
    return PreviewLookup(
        settings=settings, session_factory=sessions, http=http, client=client, limiter=limiter, **options
    )


async def rows(sessions: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> list[dict[str, Any]]:
    async with sessions() as session:
        return [dict(r) for r in (await session.execute(text(sql), params)).mappings()]


async def wait_for(predicate: Any, *, seconds: float = 60.0, every: float = 0.05) -> None:
    """Await `predicate()` (async, truthy) until it holds (a liveness bound, not a speed check)."""
    from tests.support.waiting import eventually_async

    await eventually_async(predicate, what="the condition", seconds=seconds, every=every)
