"""The preview lookup stage against the iTunes stand-in: claims, outcomes, faults, order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.config import Settings
from haunt_fm.pipeline.previews.tasks import PreviewLookup
from tests.discovery.support import discovery_settings, listen, preview_loop, rows, stock, wait_for
from tests.fakes import FakeItunes, FakeLastfm, Fault

Sessions = async_sessionmaker[AsyncSession]


async def _pool(
    serve: Callable[..., str],
    lastfm: FakeLastfm,
    itunes: FakeItunes,
    seeds: list[tuple[str, str]],
    limit: int,
) -> tuple[httpx.AsyncClient, set[tuple[str, str]]]:
    """Listen to `seeds` and discover over HTTP; returns the app client and every track's names."""
    http = httpx.AsyncClient(base_url=serve(**discovery_settings(lastfm, itunes)), timeout=60)
    for i, (artist, title) in enumerate(seeds):
        await listen(http, artist, title, minutes=i)
    response = await http.post("/api/admin/discover", json={"limit": limit})
    assert response.status_code == 200, response.text
    names = {(t["artist"]["name"], t["name"]) for s in seeds for t in lastfm.similar_for(*s, limit)}
    return http, names | set(seeds)


@contextlib.asynccontextmanager
async def running(loop: PreviewLookup) -> AsyncIterator[None]:
    """The preview lookup loop running in the background for the block."""
    task = asyncio.create_task(loop.run_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running_until_idle(loop: PreviewLookup) -> AsyncIterator[asyncio.Task[dict[str, int]]]:
    """`loop.run_until_idle` in the background (a liveness bound of 120 s); yields its task."""
    task = asyncio.create_task(loop.run_until_idle(seconds=120))
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def predicate() -> bool:
        return check()

    return predicate


async def _pending_is(db: Sessions, count: int) -> bool:
    found = await rows(db, "SELECT count(*) AS n FROM tracks WHERE preview_status = 'pending'")
    return bool(found[0]["n"] == count)


async def _statuses(db: Sessions) -> dict[tuple[str, str], dict[str, Any]]:
    found = await rows(
        db,
        "SELECT artist, title, preview_status, itunes_track_id, preview_error, preview_next_at, "
        "preview_attempts, preview_lease_until, embedding_status FROM tracks",
    )
    return {(r["artist"], r["title"]): r for r in found}


async def test_every_preview_resolves_through_throttling_and_errors(
    serve: Callable[..., str],
    db: Sessions,
    lastfm: FakeLastfm,
    itunes: FakeItunes,
    settings_factory: Callable[..., Settings],
) -> None:
    seeds = [("Radiohead", "Karma Police"), ("Portishead", "Roads"), ("Massive Attack", "Teardrop")]
    http, names = await _pool(serve, lastfm, itunes, seeds, limit=8)
    absent = set(sorted(names)[::7])
    store_ids = stock(itunes, sorted(names), absent=absent)
    # Throttles (empty 403, 429), server errors and a proxy page, interleaved with real answers.
    itunes.throttle(times=3, status=403)
    itunes.throttle(times=2, status=429)
    itunes.inject(Fault(503), times=3)
    itunes.inject(Fault(502, "<html><body>Bad Gateway</body></html>", "text/html"), times=2)

    async with aclosing(http), httpx.AsyncClient() as itunes_http:
        loop = preview_loop(settings_factory(), db, itunes, itunes_http)
        stats = await loop.run_until_idle(seconds=20)
        assert stats["pending"] == 0, stats
        assert itunes.pending_faults == 0

        tracks = await _statuses(db)
        assert set(tracks) == names
        now = datetime.now(UTC)
        for key, track in tracks.items():
            if key in absent:
                # Only karaoke / tribute / cover versions in the store: not found, looked up again in 30 days.
                assert track["preview_status"] == "not_found", key
                assert "No song by" in track["preview_error"]
                assert track["preview_next_at"] - now > timedelta(days=29)
                assert track["embedding_status"] == "waiting"
            else:
                assert track["preview_status"] == "found", (key, track)
                assert track["itunes_track_id"] == store_ids[key]
                assert track["embedding_status"] == "pending"
            assert track["preview_lease_until"] is None
        statuses = sorted(r.status for r in itunes.requests if r.status != 200)
        assert statuses == [403, 403, 403, 429, 429, 502, 502, 503, 503, 503]

        status = (await http.get("/api/status")).json()
        assert status["pipeline"]["preview"] == {
            "pending": 0,
            "found": len(store_ids),
            "not_found": len(absent),
            "failed": 0,
        }
        assert status["previews"]["last_lookup_at"]


async def test_throttling_never_marks_a_track_missing(
    serve: Callable[..., str],
    db: Sessions,
    lastfm: FakeLastfm,
    itunes: FakeItunes,
    settings_factory: Callable[..., Settings],
) -> None:
    http, names = await _pool(serve, lastfm, itunes, [("Radiohead", "Karma Police")], limit=5)
    stock(itunes, names)
    itunes.throttle_all = True  # every search answers an empty 403
    async with aclosing(http), httpx.AsyncClient() as itunes_http:
        # One loop throughout, ending when it is idle: stopping it mid-lookup is shutdown's
        # business, not throttling's.
        lookup = preview_loop(settings_factory(), db, itunes, itunes_http)
        async with running_until_idle(lookup) as finished:
            await wait_for(_async(lambda: lookup.stats["throttled"] >= 2))
            assert {r.status for r in itunes.requests} == {403}
            # Only a track in flight (leased) has its claim counted until its lease is given back.
            for track in (await _statuses(db)).values():
                assert track["preview_status"] == "pending" and track["preview_error"] is None
                assert track["preview_attempts"] == (0 if track["preview_lease_until"] is None else 1)
            previews = (await http.get("/api/status")).json()["previews"]
            assert "throttling" in previews["last_error"] and previews["last_error_at"]

            itunes.throttle_all = False
            stats = await finished
        assert stats["pending"] == 0 and stats["found"] == len(names)
        assert (await http.get("/api/status")).json()["previews"]["last_error"] is None


async def test_transient_failures_back_off_then_fail_then_retry_later(
    serve: Callable[..., str],
    db: Sessions,
    lastfm: FakeLastfm,
    itunes: FakeItunes,
    settings_factory: Callable[..., Settings],
) -> None:
    lastfm.set_similar("Radiohead", "Karma Police", [])
    http, _ = await _pool(serve, lastfm, itunes, [("Radiohead", "Karma Police")], limit=5)
    store_id = itunes.add_track("Radiohead", "Karma Police")
    # 2 tries per lookup (the client) x 3 lookups (the stage): every one of them a 503.
    itunes.inject(Fault(503), times=6)
    async with aclosing(http), httpx.AsyncClient() as itunes_http:
        loop = preview_loop(
            settings_factory(), db, itunes, itunes_http, max_attempts=3, failed_retry_seconds=0.4
        )
        stats = await loop.run_until_idle(seconds=10)
        assert (stats["retry"], stats["gave_up"], stats["pending"]) == (3, 1, 0)
        [track] = (await _statuses(db)).values()
        assert track["preview_status"] == "failed"
        assert "HTTP 503" in track["preview_error"] and "after 3 attempt(s)" in track["preview_error"]
        assert (await http.get("/api/status")).json()["pipeline"]["preview"]["failed"] == 1

        await asyncio.sleep(0.5)  # the long retry interval has passed: queued again, and found
        stats = await preview_loop(settings_factory(), db, itunes, itunes_http).run_until_idle(seconds=10)
        [track] = (await _statuses(db)).values()
        assert (track["preview_status"], track["itunes_track_id"]) == ("found", store_id)


async def test_listened_tracks_first_then_by_summed_match(
    serve: Callable[..., str],
    db: Sessions,
    lastfm: FakeLastfm,
    itunes: FakeItunes,
    settings_factory: Callable[..., Settings],
) -> None:
    lastfm.set_similar("Seed", "A", [("Cand", "X", 0.9), ("Cand", "Y", 0.5), ("Cand", "Z", 0.2)])
    lastfm.set_similar("Seed", "B", [("Cand", "Z", 0.9), ("Cand", "W", 0.3)])
    http, names = await _pool(serve, lastfm, itunes, [("Seed", "A"), ("Seed", "B")], limit=10)
    stock(itunes, names)
    async with aclosing(http), httpx.AsyncClient() as itunes_http:
        loop = preview_loop(settings_factory(), db, itunes, itunes_http, concurrency=1)
        await loop.run_until_idle(seconds=10)
    terms = [r.query["term"] for r in itunes.requests]
    assert sorted(terms[:2]) == ["Seed A", "Seed B"]
    # Z is suggested by both seeds: 0.2 + 0.9 = 1.1 puts it first.
    assert terms[2:] == ["Cand Z", "Cand X", "Cand Y", "Cand W"]


async def test_leases_keep_tracks_apart_and_expire(
    serve: Callable[..., str],
    db: Sessions,
    lastfm: FakeLastfm,
    itunes: FakeItunes,
    settings_factory: Callable[..., Settings],
) -> None:
    http, names = await _pool(serve, lastfm, itunes, [("Radiohead", "Karma Police")], limit=12)
    stock(itunes, names)
    # Another process claimed Karma Police and died: its lease still runs for an hour.
    async with db() as session, session.begin():
        await session.execute(
            text(
                "UPDATE tracks SET preview_lease_until = now() + interval '1 hour' "
                "WHERE artist = 'Radiohead' AND title = 'Karma Police'"
            )
        )
    async with aclosing(http), httpx.AsyncClient() as itunes_http:
        # Two stages (as two processes would) share the queue: no track is searched twice.
        first = preview_loop(settings_factory(), db, itunes, itunes_http, concurrency=3)
        second = preview_loop(settings_factory(), db, itunes, itunes_http, concurrency=3)
        async with running(first), running(second):
            # Until every track but the leased one is looked up (a liveness bound, not a speed check).
            await wait_for(lambda: _pending_is(db, 1), seconds=60)
        terms = [r.query["term"] for r in itunes.requests]
        assert len(terms) == len(set(terms)) == len(names) - 1
        assert "Radiohead Karma Police" not in terms
        tracks = await _statuses(db)
        assert tracks[("Radiohead", "Karma Police")]["preview_status"] == "pending"

        async with db() as session, session.begin():
            await session.execute(text("UPDATE tracks SET preview_lease_until = now() - interval '1 second'"))
        stats = await preview_loop(settings_factory(), db, itunes, itunes_http).run_until_idle(seconds=10)
        assert stats["pending"] == 0
        assert (await _statuses(db))[("Radiohead", "Karma Police")]["preview_status"] == "found"


@pytest.mark.parametrize(
    ("artist", "title", "term"),
    [
        ("Daft Punk feat. Pharrell Williams", "Get Lucky (Radio Edit)", "Daft Punk Get Lucky"),
        ("The Beatles", "Let It Be - Remastered 2009", "The Beatles Let It Be"),
        ("Radiohead", "Paranoid Android", "Radiohead Paranoid Android"),
        ("Massive Attack", "Teardrop (Mad Professor Remix)", "Massive Attack Teardrop (Mad Professor Remix)"),
    ],
)
def test_search_term_drops_credit_and_version_noise(artist: str, title: str, term: str) -> None:
    from haunt_fm.pipeline.previews.service import search_term

    assert search_term(artist, title) == term
