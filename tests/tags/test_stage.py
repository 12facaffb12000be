"""The tags stage: Last.fm track.getTopTags for every track, on the lease queue, at the shared rate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from haunt_fm.clients.lastfm import LastfmClient
from haunt_fm.db.rate_limits import shared_limiter
from haunt_fm.db.session import to_libpq_dsn, transaction
from haunt_fm.pipeline.discovery.repository import Candidate
from haunt_fm.pipeline.discovery.service import store_candidates
from haunt_fm.pipeline.tags.tasks import TagFetcher
from haunt_fm.pipeline.tracks.identity import identity_params
from haunt_fm.queue import Wakeups
from tests.conftest import make_settings
from tests.discovery.support import FAST, LASTFM_KEY, rows
from tests.fakes import FakeLastfm
from tests.recommendations.support import Factory
from tests.tags.support import scalar


async def add_track(
    db: Factory, artist: str, title: str, *, listened: bool = False, score: float = 0.0
) -> int:
    ident = identity_params(title=title, artist=artist)
    async with transaction(db) as session:
        return int(
            (
                await session.execute(
                    text(
                        "INSERT INTO tracks (title, artist, norm_artist, norm_title, norm_key, listened, "
                        "discovery_score) VALUES (:t, :a, :na, :nt, :nk, :l, :s) RETURNING id"
                    ),
                    {
                        "t": title,
                        "a": artist,
                        "na": ident["norm_artist"],
                        "nt": ident["norm_title"],
                        "nk": ident["norm_key"],
                        "l": listened,
                        "s": score,
                    },
                )
            ).scalar_one()
        )


async def tags_of(db: Factory, track_id: int) -> dict[str, int]:
    got = await rows(db, "SELECT tag, weight FROM track_tags WHERE track_id = :id", id=track_id)
    return {r["tag"]: r["weight"] for r in got}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def fetcher(
    db: Factory, lastfm: FakeLastfm, tmp_path: Path, pg_url: str, http: httpx.AsyncClient, **options: Any
) -> TagFetcher:
    """The stage as `serve` runs it (its own client on the database-wide limiter) unless a key is given."""
    key = options.pop("key", None)
    settings = make_settings(
        tmp_path,
        pg_url,
        lastfm_api_key=LASTFM_KEY,
        lastfm_api_url=lastfm.api_url,
        lastfm_rate_per_second=200.0,
    )
    client = None
    if key is not None:
        limiter = shared_limiter("lastfm", rate=200.0, per=1.0, sessions=db)
        client = LastfmClient(key, lastfm.api_url, http=http, limiter=limiter, retry=FAST)
    defaults: dict[str, Any] = {"concurrency": 1, "poll_seconds": 0.05, "retry_base_seconds": 0.01}
    return TagFetcher(settings=settings, session_factory=db, http=http, client=client, **(defaults | options))


def asked(lastfm: FakeLastfm) -> list[tuple[str, str]]:
    return [
        (r.query["artist"], r.query["track"])
        for r in lastfm.requests
        if r.query.get("method", "").lower() == "track.gettoptags"
    ]


async def test_tags_are_fetched_listened_first_normalised_and_refreshed(
    db: Factory, lastfm: FakeLastfm, tmp_path: Path, pg_url: str, http: httpx.AsyncClient
) -> None:
    lastfm.default_tags = False
    low = await add_track(db, "Slow Gardens", "Moss", score=0.2)
    heard = await add_track(db, "Velvet Harbours", "Tide", listened=True)
    high = await add_track(db, "Glass Choirs", "Halo", score=0.9)
    lastfm.set_tags(
        "Velvet Harbours",
        "Tide",
        [("Lo-Fi", 100), ("lofi", 80), ("Chill", 60), ("seen live", 50), ("2019", 5)],
    )
    lastfm.set_tags("Glass Choirs", "Halo", [("ambient", 100), ("Ambient", 90)])
    lastfm.set_tags("Slow Gardens", "Moss", [("favourites", 100)])

    stage = fetcher(db, lastfm, tmp_path, pg_url, http)
    result = await stage.run_until_idle(seconds=20)
    assert result["fetched"] == 3 and result["pending"] == 0
    # Listened first, then candidates by discovery score.
    assert asked(lastfm) == [("Velvet Harbours", "Tide"), ("Glass Choirs", "Halo"), ("Slow Gardens", "Moss")]
    # One spelling per tag at its heaviest weight; tags about the listener dropped; years kept.
    assert await tags_of(db, heard) == {"lo fi": 100, "chill": 60, "2019": 5}
    assert await tags_of(db, high) == {"ambient": 100}
    assert await tags_of(db, low) == {}  # only noise: fetched, nothing to keep
    state = (
        await rows(
            db, "SELECT tags_status, tags_next_at, tags_fetched_at FROM tracks WHERE id = :id", id=heard
        )
    )[0]
    assert state["tags_status"] == "done" and state["tags_fetched_at"] is not None
    # Fetched again after HAUNTFM_TAGS_REFRESH_DAYS (default 90).
    due = state["tags_next_at"] - datetime.now(UTC)
    assert timedelta(days=89) < due < timedelta(days=91)
    # Through the Last.fm limit every process on the database shares.
    assert await scalar(db, "SELECT count(*) FROM rate_limits WHERE service = 'lastfm'") == 1
    generation = await scalar(
        db, "SELECT CAST(value ->> 'generation' AS bigint) FROM app_state WHERE key = 'tags'"
    )
    assert generation == 2  # two tracks' tags changed
    status = await scalar(db, "SELECT value ->> 'last_fetch_at' FROM app_state WHERE key = 'tags'")
    assert status is not None

    # The refresh comes due: Last.fm's tags changed meanwhile, and the stored ones follow.
    lastfm.set_tags("Velvet Harbours", "Tide", [("chill", 100), ("mellow", 70)])
    async with transaction(db) as session:
        await session.execute(text("UPDATE tracks SET tags_next_at = now() - interval '1 second'"))
    before = len(asked(lastfm))
    result = await fetcher(db, lastfm, tmp_path, pg_url, http).run_until_idle(seconds=20)
    assert result["fetched"] == 3 and len(asked(lastfm)) == before + 3
    assert await tags_of(db, heard) == {"chill": 100, "mellow": 70}
    # Only the track whose tags changed moved the generation (vibe vectors are recomputed once).
    assert (
        await scalar(db, "SELECT CAST(value ->> 'generation' AS bigint) FROM app_state WHERE key = 'tags'")
        == 3
    )


async def test_a_track_last_fm_does_not_know_is_done_without_tags(
    db: Factory, lastfm: FakeLastfm, tmp_path: Path, pg_url: str, http: httpx.AsyncClient
) -> None:
    unknown = await add_track(db, "Nobody", "unknown song")
    result = await fetcher(db, lastfm, tmp_path, pg_url, http).run_until_idle(seconds=20)
    assert result["fetched"] == 1
    assert await tags_of(db, unknown) == {}
    assert await scalar(db, "SELECT tags_status FROM tracks WHERE id = :id", id=unknown) == "done"


async def test_transient_failures_retry_then_fail_visibly_and_come_back_later(
    db: Factory, lastfm: FakeLastfm, tmp_path: Path, pg_url: str, http: httpx.AsyncClient
) -> None:
    track = await add_track(db, "Iron Wolves", "Forge")
    lastfm.fail_next(11, times=4)  # "Service Offline": the client tries twice per attempt
    stage = fetcher(db, lastfm, tmp_path, pg_url, http, key=LASTFM_KEY, max_attempts=2)
    await stage.run_until_idle(seconds=20)
    row = (await rows(db, "SELECT * FROM tracks WHERE id = :id", id=track))[0]
    assert row["tags_status"] == "failed" and "Last.fm answered error 11" in row["tags_error"]
    assert "after 2 attempts" in row["tags_error"] and "Tried again later" in row["tags_error"]
    assert row["tags_next_at"] - datetime.now(UTC) > timedelta(hours=23)
    assert stage.stats["retry"] == 1 and stage.stats["failed"] == 1
    last_error = await scalar(db, "SELECT value ->> 'last_error' FROM app_state WHERE key = 'tags'")
    assert "error 11" in str(last_error)
    # A day later it is due again, and Last.fm answers this time.
    async with transaction(db) as session:
        await session.execute(text("UPDATE tracks SET tags_next_at = now() - interval '1 second'"))
    lastfm.set_tags("Iron Wolves", "Forge", [("heavy metal", 100)])
    await fetcher(db, lastfm, tmp_path, pg_url, http, key=LASTFM_KEY).run_until_idle(seconds=20)
    assert await tags_of(db, track) == {"heavy metal": 100}


async def test_a_rejected_key_leaves_the_tracks_due_and_says_so(
    db: Factory, lastfm: FakeLastfm, tmp_path: Path, pg_url: str, http: httpx.AsyncClient
) -> None:
    track = await add_track(db, "Amber Owls", "Brass")
    stage = fetcher(db, lastfm, tmp_path, pg_url, http, key="not-the-key", auth_pause_seconds=0.05)
    await stage.run_until_idle(seconds=1)
    row = (await rows(db, "SELECT * FROM tracks WHERE id = :id", id=track))[0]
    # Not the track's fault: it stays due and the attempts do not count.
    assert row["tags_status"] == "pending" and row["tags_attempts"] == 0 and row["tags_lease_owner"] is None
    assert stage.stats["auth_error"] >= 1 and "HAUNTFM_LASTFM_API_KEY" in (stage.last_error or "")
    assert await tags_of(db, track) == {}


async def test_listens_and_discovery_wake_the_stage(
    db: Factory, client: httpx.AsyncClient, pg_url: str
) -> None:
    wakeups = Wakeups(to_libpq_dsn(pg_url))
    await wakeups.start()
    try:
        for _ in range(100):
            if wakeups.listening:
                break
            await wakeups.wait("never", 0.05)
        assert wakeups.listening
        wakeups.event("tags").clear()
        r = await client.post("/api/history/webhook", json={"title": "Tide", "artist": "Velvet Harbours"})
        assert r.status_code == 201
        assert await wakeups.wait("tags", 5.0)
        # A song heard before adds no track: nothing to wake for.
        r = await client.post(
            "/api/history/webhook",
            json={"title": "Tide", "artist": "Velvet Harbours", "played_at": "2020-01-01T00:00:00+00:00"},
        )
        assert r.status_code == 201 and not await wakeups.wait("tags", 0.5)
        ident = identity_params(title="Halo", artist="Glass Choirs")
        candidate = Candidate(
            title="Halo", artist="Glass Choirs", norm_artist=ident["norm_artist"],
            norm_title=ident["norm_title"], norm_key=ident["norm_key"], mbid=None, url=None,
            duration_ms=None, match=0.5,
        )  # fmt: skip
        async with transaction(db) as session:
            stored = await store_candidates(session, candidates=[candidate], source="tag:ambient")
        assert len(stored.new_ids) == 1
        assert await wakeups.wait("tags", 5.0)
    finally:
        await wakeups.stop()
