"""POST /api/admin/discover over real HTTP, against the real database and the Last.fm and iTunes
stand-ins on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.discovery.support import discovery_settings, listen, rows, stock, wait_for
from tests.fakes import FakeItunes, FakeLastfm
from tests.fakes.lastfm import track_json

Sessions = async_sessionmaker[AsyncSession]


def _app(
    serve: Callable[..., str], lastfm: FakeLastfm, itunes: FakeItunes, **overrides: Any
) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=serve(**discovery_settings(lastfm, itunes, **overrides)), timeout=60)


async def _discover(http: httpx.AsyncClient, expect: int = 200, **body: Any) -> dict[str, Any]:
    response = await http.post("/api/admin/discover", json=body)
    assert response.status_code == expect, response.text
    return dict(response.json())


def _similar_requests(lastfm: FakeLastfm) -> list[Any]:
    # With start_background, `serve` also fetches tags (track.getTopTags) from the same stand-in.
    return [r for r in lastfm.requests if r.query.get("method") == "track.getsimilar"]


def _lastfm_queries(lastfm: FakeLastfm) -> list[tuple[str, str]]:
    return [(r.query["artist"], r.query["track"]) for r in _similar_requests(lastfm)]


async def test_listens_become_candidates_with_edges_and_previews(
    serve: Callable[..., str], db: Sessions, lastfm: FakeLastfm, itunes: FakeItunes
) -> None:
    seeds = [("Radiohead", "Karma Police"), ("Björk", "Jóga"), ("Massive Attack", "Teardrop")]
    wire = {seed: lastfm.similar_for(*seed, 10) for seed in seeds}
    suggested = {(t["artist"]["name"], t["name"]) for tracks in wire.values() for t in tracks}
    absent = set(sorted(suggested)[:3])
    store_ids = stock(itunes, [*seeds, *sorted(suggested)], absent=absent)

    async with _app(serve, lastfm, itunes, start_background=True, preview_worker_enabled=True) as http:
        for i, (artist, title) in enumerate(seeds):
            await listen(http, artist, title, minutes=i)
        body = await _discover(http, limit=10)

        assert body["seeds"] == 3 and body["seeds_failed"] == 0 and body["errors"] == []
        assert body["candidates_new"] == len(suggested) == body["preview_lookups_queued"]
        assert body["candidates_seen"] == 0
        assert body["edges"] == sum(len(tracks) for tracks in wire.values())
        assert sorted(_lastfm_queries(lastfm)) == sorted(seeds)
        assert all(
            r.query["limit"] == "10" and r.query["autocorrect"] == "1" for r in _similar_requests(lastfm)
        )

        # Every edge is kept with Last.fm's match; the score is the sum over seeds.
        edges = await rows(
            db,
            "SELECT s.artist AS seed_artist, s.title AS seed_title, c.artist, c.title, e.match "
            "FROM track_similarities e JOIN tracks s ON s.id = e.seed_track_id "
            "JOIN tracks c ON c.id = e.candidate_track_id",
        )
        expected_edges = {
            (seed, (t["artist"]["name"], t["name"])): float(t["match"])
            for seed, tracks in wire.items()
            for t in tracks
        }
        assert {
            ((e["seed_artist"], e["seed_title"]), (e["artist"], e["title"])): e["match"] for e in edges
        } == (pytest.approx(expected_edges))
        candidates = {
            (r["artist"], r["title"]): r
            for r in await rows(
                db,
                "SELECT artist, title, source, listened, discovery_score, mbid, lastfm_url FROM tracks "
                "WHERE NOT listened",
            )
        }
        assert set(candidates) == suggested
        for (_, (artist, title)), match in expected_edges.items():
            score = sum(m for (_, c), m in expected_edges.items() if c == (artist, title))
            assert candidates[(artist, title)]["discovery_score"] == pytest.approx(score)
            assert match > 0
        for tracks in wire.values():
            for t in tracks:
                row = candidates[(t["artist"]["name"], t["name"])]
                assert row["source"] == "lastfm" and row["lastfm_url"] == t["url"]
                assert row["mbid"] == t.get("mbid")

        # The background lookup (woken by discovery) resolves every preview; /api/status follows.
        async def settled() -> bool:
            status = (await http.get("/api/status")).json()
            return bool(status["pipeline"]["preview"]["pending"] == 0)

        await wait_for(settled, seconds=20)
        status = (await http.get("/api/status")).json()
        pipeline = status["pipeline"]
        assert pipeline["candidates"] == len(suggested) and pipeline["listened_tracks"] == 3
        assert pipeline["preview"] == {
            "pending": 0,
            "found": len(store_ids),
            "not_found": len(absent),
            "failed": 0,
        }
        assert pipeline["embedding"]["pending"] == len(store_ids)
        assert status["discovery"]["lastfm_configured"] is True
        assert status["discovery"]["last_run_at"] and status["discovery"]["last_run"]["seeds"] == 3
        assert status["discovery"]["last_error"] is None
        assert status["previews"]["last_lookup_at"]

        tracks = await rows(
            db,
            "SELECT artist, title, preview_status, itunes_track_id, preview_url, genre, duration_ms, "
            "artwork_url, itunes_album, embedding_status FROM tracks",
        )
        for track in tracks:
            key = (track["artist"], track["title"])
            if key in absent:
                assert track["preview_status"] == "not_found" and track["itunes_track_id"] is None
                continue
            # The original, never the karaoke / tribute / cover listed before it.
            assert track["itunes_track_id"] == store_ids[key], key
            assert track["preview_url"] == itunes.preview_url(store_ids[key])
            assert track["genre"] == "Pop" and track["duration_ms"] == 215_000
            assert track["artwork_url"].endswith("100x100bb.jpg") and track["itunes_album"]
            assert track["embedding_status"] == "pending"

        # A listen arriving later is looked up without a restart.
        stock(itunes, [("Portishead", "Roads")])
        new_id = await listen(http, "Portishead", "Roads", minutes=30)

        async def found() -> bool:
            [row] = await rows(db, "SELECT preview_status FROM tracks WHERE id = :id", id=new_id)
            return bool(row["preview_status"] == "found")

        await wait_for(found, seconds=15)


async def test_no_key_is_409_naming_the_setting(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/admin/discover", json={"limit": 50})
    assert response.status_code == 409
    assert "HAUNTFM_LASTFM_API_KEY" in response.json()["detail"]
    status = (await client.get("/api/status")).json()
    assert status["discovery"]["lastfm_configured"] is False


async def test_validation_profiles_and_curl_style_bodies(
    serve: Callable[..., str], lastfm: FakeLastfm, itunes: FakeItunes
) -> None:
    async with _app(serve, lastfm, itunes) as http:
        for bad in ({"limit": 0}, {"limit": 501}, {"max_seeds": 0}, {"limit": "many"}, {"force": "maybe"}):
            response = await http.post("/api/admin/discover", json=bad)
            assert response.status_code == 422, (bad, response.text)
        response = await http.post("/api/admin/discover", content=b"{not json")
        assert response.status_code == 422
        response = await http.post("/api/admin/discover", json={"profile": "nobody"})
        assert response.status_code == 404 and "nobody" in response.json()["detail"]

        await listen(http, "Radiohead", "Karma Police")
        # `curl -X POST ... -d '{"limit": 5}'` sends the JSON form-encoded: still understood.
        response = await http.post(
            "/api/admin/discover",
            content=b'{"limit": 5}',
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["seeds"] == 1 and response.json()["candidates_new"] == 5
        # No body at all: the defaults (and nothing due any more).
        response = await http.post("/api/admin/discover")
        assert response.status_code == 200 and response.json()["seeds"] == 0
        assert response.json()["seeds_skipped"] == 1

        schema = (await http.get("/openapi.json")).json()["paths"]["/api/admin/discover"]["post"]
        assert set(schema["requestBody"]["content"]["application/json"]["schema"]["properties"]) == {
            "limit",
            "profile",
            "max_seeds",
            "force",
        }


async def test_reexpansion_interval_force_and_scores_not_double_counted(
    serve: Callable[..., str], db: Sessions, lastfm: FakeLastfm, itunes: FakeItunes
) -> None:
    lastfm.set_similar("Seed", "One", [("Shared", "Song", 0.8), ("Only", "A", 0.4)])
    lastfm.set_similar("Seed", "Two", [("Shared", "Song", 0.5), ("Seed", "One", 0.9)])
    async with _app(serve, lastfm, itunes, discovery_reexpand_days=7) as http:
        await listen(http, "Seed", "One")
        await listen(http, "Seed", "Two", minutes=1)
        first = await _discover(http)
        assert (first["seeds"], first["candidates_new"], first["candidates_seen"]) == (2, 2, 1)

        async def score(artist: str, title: str) -> float:
            [row] = await rows(
                db, "SELECT discovery_score FROM tracks WHERE artist = :a AND title = :t", a=artist, t=title
            )
            return float(row["discovery_score"])

        assert await score("Shared", "Song") == pytest.approx(1.3)
        # A listened track suggested by another seed gets its edge too (and stays listened).
        assert await score("Seed", "One") == pytest.approx(0.9)

        again = await _discover(http)
        assert (again["seeds"], again["seeds_skipped"], len(lastfm.requests)) == (0, 2, 2)

        # Forced: asked again, matches replaced (not added to), and nothing new.
        lastfm.set_similar("Seed", "One", [("Shared", "Song", 0.6), ("Only", "A", 0.4)])
        forced = await _discover(http, force=True)
        assert (forced["seeds"], forced["candidates_new"], forced["candidates_seen"]) == (2, 0, 3)
        assert len(lastfm.requests) == 4
        assert await score("Shared", "Song") == pytest.approx(1.1)
        assert await score("Only", "A") == pytest.approx(0.4)
        [count] = await rows(db, "SELECT count(*) AS n FROM track_similarities")
        assert count["n"] == 4

        # Once the interval has passed, a seed is due again without force.
        async with db() as session, session.begin():
            from sqlalchemy import text

            await session.execute(
                text(
                    "UPDATE tracks SET lastfm_expanded_at = now() - interval '8 days' "
                    "WHERE artist = 'Seed' AND title = 'Two'"
                )
            )
        later = await _discover(http)
        assert (later["seeds"], later["seeds_skipped"]) == (1, 1)
        assert _lastfm_queries(lastfm)[-1] == ("Seed", "Two")


async def test_seeds_of_one_profile_and_max_seeds(
    serve: Callable[..., str], lastfm: FakeLastfm, itunes: FakeItunes
) -> None:
    async with _app(serve, lastfm, itunes) as http:
        assert (await http.post("/api/profiles", json={"name": "alice"})).status_code == 201
        await listen(http, "Alice Artist", "First", profile="alice")
        await listen(http, "Alice Artist", "Second", profile="alice", minutes=1)
        await listen(http, "Alice Artist", "Third", profile="alice", minutes=2)
        await listen(http, "Default Artist", "Mine")

        body = await _discover(http, profile="alice", max_seeds=2, limit=3)
        assert (body["seeds"], body["seeds_remaining"]) == (2, 1)
        # The most recently played first.
        assert sorted(_lastfm_queries(lastfm)) == [("Alice Artist", "Second"), ("Alice Artist", "Third")]
        body = await _discover(http, profile="alice", limit=3)
        assert (body["seeds"], body["seeds_remaining"], body["seeds_skipped"]) == (1, 0, 2)
        assert ("Default Artist", "Mine") not in _lastfm_queries(lastfm)

        body = await _discover(http, limit=3)  # every profile: only default's track is still due
        assert (body["seeds"], body["seeds_skipped"]) == (1, 3)
        assert _lastfm_queries(lastfm)[-1] == ("Default Artist", "Mine")


async def test_bad_key_stops_the_run_and_keeps_what_was_done(
    serve: Callable[..., str], db: Sessions, lastfm: FakeLastfm, itunes: FakeItunes
) -> None:
    async with _app(serve, lastfm, itunes) as http:
        for i in range(10):
            await listen(http, "Artist", f"Song {i}", minutes=i)
        first = await _discover(http, max_seeds=2, limit=5)
        assert first["seeds"] == 2
        [before] = await rows(db, "SELECT count(*) AS n FROM tracks WHERE NOT listened")

        lastfm.valid_keys.clear()  # the key was revoked: error 10, HTTP 403
        requests_before = len(lastfm.requests)
        stopped = await _discover(http, limit=5, expect=502)
        detail = stopped["detail"]
        assert "HAUNTFM_LASTFM_API_KEY" in detail and "Invalid API key" in detail and "kept" in detail
        # Stopped at once: not one request per remaining seed.
        assert len(lastfm.requests) - requests_before <= 4 < 8
        [after] = await rows(db, "SELECT count(*) AS n FROM tracks WHERE NOT listened")
        assert after["n"] == before["n"] > 0
        [expanded] = await rows(db, "SELECT count(*) AS n FROM tracks WHERE lastfm_expanded_at IS NOT NULL")
        assert expanded["n"] == 2
        status = (await http.get("/api/status")).json()["discovery"]
        assert "HAUNTFM_LASTFM_API_KEY" in status["last_error"]

        lastfm.valid_keys.add(lastfm.api_key)
        lastfm.suspended_keys.add(lastfm.api_key)  # error 26 stops it the same way
        assert "suspended" in (await _discover(http, limit=5, expect=502))["detail"].lower()

        lastfm.suspended_keys.clear()
        resumed = await _discover(http, limit=5)
        assert (resumed["seeds"], resumed["seeds_skipped"]) == (8, 2)
        status = (await http.get("/api/status")).json()["discovery"]
        assert status["last_error"] is None and status["last_run"]["seeds"] == 8


async def test_transient_errors_are_retried_and_a_failing_seed_is_reported(
    serve: Callable[..., str], lastfm: FakeLastfm, itunes: FakeItunes
) -> None:
    async with _app(serve, lastfm, itunes) as http:
        for i in range(6):
            await listen(http, "Artist", f"Song {i}", minutes=i)
        lastfm.fail_next(29)  # rate limit, HTTP 429
        lastfm.fail_next(11, http_status=503)
        lastfm.html_next(status=502)
        lastfm.fail_next(3, http_status=400)  # not transient: that seed fails, the others go on
        body = await _discover(http, limit=4)
        assert (body["seeds"], body["seeds_failed"]) == (5, 1)
        assert sorted(r.status for r in lastfm.requests if r.status != 200) == [400, 429, 502, 503]
        [error] = body["errors"]
        assert error["artist"] == "Artist" and "error 3" in error["error"]
        status = (await http.get("/api/status")).json()["discovery"]
        assert "1 seed(s) failed" in status["last_error"]

        # The failed seed was not marked expanded: the next run does it.
        retry = await _discover(http, limit=4)
        assert (retry["seeds"], retry["seeds_skipped"], retry["errors"]) == (1, 5, [])
        assert _lastfm_queries(lastfm)[-1] == ("Artist", error["title"])


async def test_concurrent_runs_never_expand_a_seed_twice(
    serve: Callable[..., str], db: Sessions, lastfm: FakeLastfm, itunes: FakeItunes
) -> None:
    async with _app(serve, lastfm, itunes, lastfm_rate_per_second=40.0) as http:
        for i in range(12):
            await listen(http, "Artist", f"Song {i}", minutes=i)
        first, second = await asyncio.gather(*(_discover(http, limit=5) for _ in range(2)))
        assert first["seeds"] + second["seeds"] == 12
        queries = _lastfm_queries(lastfm)
        assert len(queries) == len(set(queries)) == 12
        # Both runs forced at once: still once each.
        both = await asyncio.gather(*(_discover(http, limit=5, force=True) for _ in range(2)))
        assert sum(run["seeds"] for run in both) == 12
        assert len(lastfm.requests) == 24
        [edges] = await rows(db, "SELECT count(*) AS n FROM track_similarities")
        assert edges["n"] == 12 * 5


async def test_wire_quirks_seed_itself_duplicates_single_object(
    serve: Callable[..., str], db: Sessions, lastfm: FakeLastfm, itunes: FakeItunes
) -> None:
    lastfm.set_similar(
        "Radiohead",
        "Karma Police",
        [
            track_json("Karma Police - Remastered 2017", "Radiohead", match=1.0),  # the seed itself
            track_json("Teardrop", "Massive Attack", match=0.7, mbid="6b9a8d4f-0000-4000-8000-000000000001"),
            track_json("Teardrop (Live)", "Massive Attack", match=0.9),  # same song: one candidate
            track_json("Roads", "Portishead", match=0.5),  # no mbid
        ],
    )
    lastfm.set_similar("Unknown Band", "Nothing", [])
    lastfm.set_similar("Lonely", "Single", [("Only", "Child", 0.42)])
    lastfm.single_object = True  # one similar track arrives as a bare object
    async with _app(serve, lastfm, itunes) as http:
        await listen(http, "Radiohead", "Karma Police")
        await listen(http, "Unknown Band", "Nothing", minutes=1)
        await listen(http, "Lonely", "Single", minutes=2)
        body = await _discover(http)
        assert (body["seeds"], body["seeds_without_similar"], body["candidates_new"]) == (3, 1, 3)
        tracks = {
            r["artist"]: r
            for r in await rows(
                db, "SELECT artist, title, mbid, discovery_score FROM tracks WHERE NOT listened"
            )
        }
        assert set(tracks) == {"Massive Attack", "Portishead", "Only"}
        assert tracks["Massive Attack"]["discovery_score"] == pytest.approx(0.9)
        assert tracks["Massive Attack"]["mbid"] is None or tracks["Massive Attack"]["mbid"].startswith("6b9a")
        assert tracks["Portishead"]["mbid"] is None
        assert tracks["Only"]["discovery_score"] == pytest.approx(0.42)
        [seed] = await rows(
            db, "SELECT count(*) AS n FROM track_similarities WHERE seed_track_id = candidate_track_id"
        )
        assert seed["n"] == 0


async def test_progress_is_committed_per_seed_and_visible_during_a_run(
    serve: Callable[..., str], lastfm: FakeLastfm, itunes: FakeItunes
) -> None:
    for i in range(8):
        lastfm.set_similar("Artist", f"Song {i}", [("Other", f"Song {i}.{j}") for j in range(3)])
    async with _app(serve, lastfm, itunes, lastfm_rate_per_second=8.0) as http:
        for i in range(8):
            await listen(http, "Artist", f"Song {i}", minutes=i)
        run = asyncio.create_task(_discover(http, limit=3))
        seen: list[int] = []
        progress: list[dict] = []
        while not run.done():
            status = (await http.get("/api/status")).json()
            seen.append(status["pipeline"]["candidates"])
            if status["discovery"]["running"]:
                progress.append(status["discovery"]["running"])
            await asyncio.sleep(0.05)
        assert (await run)["candidates_new"] == 24
        # Candidates appeared seed by seed while the request was still running.
        assert any(0 < n < 24 for n in seen), seen
        # ... and the run's progress (seeds done of total) was shown while it lasted.
        assert progress and all(p["seeds_total"] == 8 for p in progress)
        assert progress[-1]["seeds_done"] >= progress[0]["seeds_done"]
        assert (await http.get("/api/status")).json()["discovery"]["running"] is None
