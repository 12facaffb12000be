"""Imported listens are listens: discovery's seed order, tastes with recency decay, known favourites."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.fakes import FakeLastfm
from tests.imports.support import lastfm_settings, listen_json, scalar, wait_import
from tests.recommendations.support import axis, embed


def _uts(year: int, month: int = 1, day: int = 1) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


async def _import_lines(http: httpx.AsyncClient, entries: list[dict[str, Any]]) -> dict[str, Any]:
    body = "".join(json.dumps(e) + "\n" for e in entries).encode()
    response = await http.post(
        "/api/admin/import/listenbrainz", content=body, headers={"content-type": "application/jsonl"}
    )
    assert response.status_code == 202, response.text
    return await wait_import(http, response.json()["import_id"])


async def _track_id(db: async_sessionmaker[AsyncSession], title: str) -> int:
    return int(await scalar(db, "SELECT id FROM tracks WHERE title = :t", t=title))


async def test_a_2019_binge_weighs_less_than_last_weeks_listens(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession]
) -> None:
    binge = [listen_json(_uts(2019, 6, 1) + 600 * i, "Blur", "Song 2") for i in range(40)]
    lately = [listen_json(_uts(2025, 3, 1) + 86_400 * i, "Elbow", "Grounds for Divorce") for i in range(2)]
    async with httpx.AsyncClient(base_url=serve(start_background=True)) as http:
        assert (await _import_lines(http, binge + lately))["imported"] == 42
        old, new = await _track_id(db, "Song 2"), await _track_id(db, "Grounds for Divorce")
        await embed(db, old, axis(0))
        await embed(db, new, axis(1))
        built = await http.post("/api/admin/build-taste-profile")
        assert built.status_code == 200 and built.json()["tracks_used"] == 2, built.text
        taste = np.array(json.loads(await scalar(db, "SELECT taste_embedding::text FROM profiles")))
        # Forty plays six years ago count for next to nothing against two last week.
        assert taste @ axis(1) > 0.99 and taste @ axis(0) < 0.01
        # Known favourites follow the same rule; the binge still counts as a play of its track.
        playlist = await http.post("/api/playlists/generate", json={"total_tracks": 2, "known_pct": 100})
        assert [t["title"] for t in playlist.json()["tracks"]] == ["Grounds for Divorce", "Song 2"]
        assert await scalar(db, "SELECT play_count FROM tracks WHERE id = :t", t=old) == 40


async def test_decades_old_listens_never_break_the_recency_decay(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession]
) -> None:
    # A week's half-life across 23 years: 2^(-1200) is below the smallest double.
    entries = [
        listen_json(_uts(2002, 3, 1), "Blur", "Song 2"),
        listen_json(_uts(2025, 3, 1), "Elbow", "Grounds"),
    ]
    async with httpx.AsyncClient(base_url=serve(start_background=True, taste_half_life_days=7.0)) as http:
        assert (await _import_lines(http, entries))["imported"] == 2
        await embed(db, await _track_id(db, "Song 2"), axis(0))
        await embed(db, await _track_id(db, "Grounds"), axis(1))
        built = await http.post("/api/admin/build-taste-profile")
        assert built.status_code == 200, built.text
        playlist = await http.post("/api/playlists/generate", json={"total_tracks": 2, "known_pct": 100})
        assert playlist.status_code in (200, 201), playlist.text
        assert [t["title"] for t in playlist.json()["tracks"]] == ["Grounds", "Song 2"]


async def test_a_first_discovery_after_a_big_import_starts_with_the_most_played(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession], lastfm: FakeLastfm
) -> None:
    # 1,200 scrobbles of 300 songs from the stand-in's catalogue; three songs played most.
    songs = lastfm.pool[:300]
    favourites = {songs[0]: 60, songs[1]: 45, songs[2]: 30}
    plays = [song for song, n in favourites.items() for _ in range(n)]
    plays += [songs[3 + i % 297] for i in range(1200 - len(plays))]
    newest = _uts(2025, 6, 1)
    lastfm.add_user("rj", [(newest - 400 * i, artist, title) for i, (artist, title) in enumerate(plays)])
    async with httpx.AsyncClient(base_url=serve(start_background=True, **lastfm_settings(lastfm))) as http:
        started = (await http.post("/api/admin/import/lastfm", json={"user": "rj"})).json()
        assert (await wait_import(http, started["import_id"]))["imported"] == 1200
        assert await scalar(db, "SELECT count(*) FROM tracks WHERE listened") == 300

        lastfm.requests.clear()
        found = await http.post("/api/admin/discover", json={"limit": 5, "max_seeds": 3})
        assert found.status_code == 200, found.text
        assert (found.json()["seeds"], found.json()["seeds_remaining"]) == (3, 297)
    async with db() as session:
        expanded = (
            await session.execute(
                text("SELECT artist, title, play_count FROM tracks WHERE lastfm_expanded_at IS NOT NULL")
            )
        ).all()
    assert {(a, t): n for a, t, n in expanded} == favourites
    asked = [
        (r.query["artist"], r.query["track"])
        for r in lastfm.requests
        if r.query["method"] == "track.getsimilar"
    ]
    assert sorted(asked) == sorted(favourites)
