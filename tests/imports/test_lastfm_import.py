"""POST /api/admin/import/lastfm against the Last.fm stand-in: the app's own job runner imports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.fakes import FakeLastfm
from tests.fakes.lastfm import FakeScrobble
from tests.imports.support import (
    BASE_UTS,
    assert_no_duplicated_listens,
    lastfm_settings,
    listens_by_source,
    scalar,
    wait_import,
)


def _history(lastfm: FakeLastfm, count: int, **options: object) -> list[FakeScrobble]:
    return lastfm.generate_scrobbles(count, newest_uts=BASE_UTS, spacing=200, **options)  # type: ignore[arg-type]


async def test_imports_the_history_once_and_again_adds_nothing(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession], lastfm: FakeLastfm
) -> None:
    scrobbles = _history(lastfm, 450)
    lastfm.add_user("rj", scrobbles, now_playing=("Now", "Playing Right Now"))
    async with httpx.AsyncClient(base_url=serve(start_background=True, **lastfm_settings(lastfm))) as http:
        assert (await http.post("/api/profiles", json={"name": "antialias"})).status_code == 201
        response = await http.post("/api/admin/import/lastfm", json={"user": "RJ", "profile": "antialias"})
        assert response.status_code == 202, response.text
        started = response.json()
        assert started["status"] == "running" and started["import_id"] > 0
        assert (started["source"], started["profile"], started["user"]) == ("lastfm", "antialias", "rj")
        assert started["progress"] == {"done": 0, "total": 450, "unit": "scrobbles"}

        done = await wait_import(http, started["import_id"])
        assert done["status"] == "done", done
        assert (done["imported"], done["duplicates"], done["skipped"], done["error"]) == (450, 0, 0, None)
        assert done["progress"] == {"done": 450, "total": 450, "unit": "scrobbles"}
        assert done["finished_at"] is not None

        # Stored as listens of the profile at their scrobble times; the now-playing row is not one.
        assert await listens_by_source(db) == {"lastfm": 450}
        newest = await scalar(db, "SELECT max(played_at) FROM listen_events")
        assert newest == datetime.fromtimestamp(BASE_UTS, tz=UTC)
        assert await scalar(db, "SELECT count(*) FROM tracks WHERE title = 'Playing Right Now'") == 0
        recent = (await http.get("/api/history/recent", params={"profile": "antialias", "limit": 5})).json()
        assert [e["source"] for e in recent["events"]] == ["lastfm"] * 5
        assert recent["events"][0]["played_at"].startswith("2023-11-14T22:13:20")
        # Plays counted per track, listened, and the newest play remembered.
        plays = {(s.artist, s.title) for s in scrobbles}
        assert await scalar(db, "SELECT count(*) FROM tracks WHERE listened") == len(plays)
        assert await scalar(db, "SELECT sum(play_count) FROM tracks") == 450

        again = await http.post("/api/admin/import/lastfm", json={"user": "rj", "profile": "antialias"})
        assert again.status_code == 202 and again.json()["import_id"] != started["import_id"]
        second = await wait_import(http, again.json()["import_id"])
        assert (second["status"], second["imported"], second["duplicates"]) == ("done", 0, 450)
        assert await listens_by_source(db) == {"lastfm": 450}
        assert await scalar(db, "SELECT sum(play_count) FROM tracks") == 450
        await assert_no_duplicated_listens(db)

        listed = (await http.get("/api/admin/imports")).json()["imports"]
        assert [i["import_id"] for i in listed] == [again.json()["import_id"], started["import_id"]]


async def test_same_track_within_a_minute_is_one_listen_and_since_limits_the_range(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession], lastfm: FakeLastfm
) -> None:
    lastfm.add_user(
        "rj",
        [
            (BASE_UTS, "Radiohead", "Airbag", "OK Computer"),
            (BASE_UTS - 30, "Radiohead", "Airbag (Remastered)", "OK Computer"),  # the same song, 30 s before
            (BASE_UTS - 3600, "Portishead", "Roads"),
            (BASE_UTS - 86_400 * 400, "Massive Attack", "Teardrop"),  # long before `since`
        ],
    )
    async with httpx.AsyncClient(base_url=serve(start_background=True, **lastfm_settings(lastfm))) as http:
        since = datetime.fromtimestamp(BASE_UTS - 86_400, tz=UTC).date().isoformat()
        response = await http.post("/api/admin/import/lastfm", json={"user": "rj", "since": since})
        assert response.status_code == 202, response.text
        assert response.json()["since"].startswith(since)
        done = await wait_import(http, response.json()["import_id"])
        assert (done["imported"], done["duplicates"], done["progress"]["done"]) == (2, 1, 3)
    assert await scalar(db, "SELECT count(*) FROM tracks WHERE artist = 'Massive Attack'") == 0
    airbag = await scalar(db, "SELECT play_count FROM tracks WHERE title LIKE 'Airbag%'")
    assert airbag == 1
    midnight = int(datetime.fromisoformat(since).replace(tzinfo=UTC).timestamp())
    asked = [r.query for r in lastfm.requests if r.query.get("method") == "user.getrecenttracks"]
    assert asked and all(q["from"] == str(midnight) for q in asked)
    assert all(q["limit"] == "200" for q in asked[1:])  # the first request only checks the user
