"""POST /api/admin/import/lastfm against the Last.fm stand-in: the app's own job runner imports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.fakes import FakeLastfm
from tests.fakes.lastfm import FakeScrobble
from tests.imports.support import (
    BASE_UTS,
    app_server,
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


async def test_unknown_user_private_history_and_missing_key_answer_with_a_sentence(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession], lastfm: FakeLastfm
) -> None:
    lastfm.add_user("hidden", _history(lastfm, 3), private=True)
    lastfm.add_user("rj", _history(lastfm, 3))
    async with httpx.AsyncClient(base_url=serve(start_background=True, **lastfm_settings(lastfm))) as http:
        unknown = await http.post("/api/admin/import/lastfm", json={"user": "nobody-here"})
        assert unknown.status_code == 404
        assert unknown.json()["error"] == "lastfm_user_unknown"
        assert "Last.fm has no user called 'nobody-here'" in unknown.json()["detail"]

        private = await http.post("/api/admin/import/lastfm", json={"user": "hidden"})
        assert private.status_code == 409 and private.json()["error"] == "lastfm_history_private"
        assert "keeps their listening history private" in private.json()["detail"]
        assert "https://www.last.fm/settings/privacy" in private.json()["detail"]

        no_profile = await http.post("/api/admin/import/lastfm", json={"user": "rj", "profile": "ghost"})
        assert (
            no_profile.status_code == 404 and "Profile 'ghost' does not exist" in no_profile.json()["detail"]
        )

        for bad in ({}, {"user": "  "}, {"user": "rj", "since": "yesterday"}, {"user": "rj", "extra": 1}):
            assert (await http.post("/api/admin/import/lastfm", json=bad)).status_code == 422

        lastfm.valid_keys.clear()
        rejected = await http.post("/api/admin/import/lastfm", json={"user": "rj"})
        assert rejected.status_code == 502 and "HAUNTFM_LASTFM_API_KEY" in rejected.json()["detail"]
        assert (await http.get("/api/admin/imports")).json() == {"imports": []}

    async with httpx.AsyncClient(base_url=serve(start_background=True)) as http:
        no_key = await http.post("/api/admin/import/lastfm", json={"user": "rj"})
        assert no_key.status_code == 409 and "HAUNTFM_LASTFM_API_KEY" in no_key.json()["detail"]
    assert await scalar(db, "SELECT count(*) FROM imports") == 0


async def test_a_user_who_turns_private_mid_import_fails_it_with_the_sentence(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession], lastfm: FakeLastfm
) -> None:
    user = lastfm.add_user("rj", _history(lastfm, 1000))
    # 2 requests/s: the job's first page leaves half a second after the check.
    url = serve(start_background=True, **lastfm_settings(lastfm, lastfm_rate_per_second=2.0))
    async with httpx.AsyncClient(base_url=url) as http:
        started = (await http.post("/api/admin/import/lastfm", json={"user": "rj"})).json()
        await wait_import(http, started["import_id"], until=lambda d: d["imported"] >= 200)
        user.private = True
        failed = await wait_import(http, started["import_id"])
    assert failed["status"] == "failed", failed
    assert "keeps their listening history private" in failed["error"]
    assert failed["imported"] == await scalar(db, "SELECT count(*) FROM listen_events")
    assert 200 <= failed["imported"] < 1000


async def test_asking_again_while_it_runs_answers_the_running_import(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession], lastfm: FakeLastfm
) -> None:
    lastfm.add_user("rj", _history(lastfm, 1000))
    url = serve(start_background=True, **lastfm_settings(lastfm, lastfm_rate_per_second=2.0))
    async with httpx.AsyncClient(base_url=url) as http:
        first = (await http.post("/api/admin/import/lastfm", json={"user": "rj"})).json()
        second = await http.post("/api/admin/import/lastfm", json={"user": "Rj"})
        assert second.status_code == 202 and second.json()["import_id"] == first["import_id"]
        # Progress shows in /api/status while it runs.
        status = (await http.get("/api/status")).json()
        [running] = status["imports"]["running"]
        assert running["import_id"] == first["import_id"] and running["progress"]["total"] == 1000
        await wait_import(http, first["import_id"], until=lambda d: 0 < d["progress"]["done"] < 1000)
        status = (await http.get("/api/status")).json()
        [running] = status["imports"]["running"]
        assert 0 < running["progress"]["done"] < 1000 and running["imported"] > 0
        done = await wait_import(http, first["import_id"])
        status = (await http.get("/api/status")).json()
        assert status["imports"]["running"] == []
        assert status["imports"]["last_finished"]["import_id"] == done["import_id"]
        assert status["imports"]["last_finished"]["imported"] == 1000
        job = await scalar(db, "SELECT progress FROM jobs WHERE id = :id", id=done["job_id"])
        assert job["total"] == 1000 and job["unit"] == "scrobbles"


async def test_a_restart_mid_import_resumes_where_it_stopped(
    db: async_sessionmaker[AsyncSession], lastfm: FakeLastfm, pg_url: str, tmp_path: Path
) -> None:
    scrobbles = _history(lastfm, 3000)
    lastfm.add_user("rj", scrobbles)
    # Two pages a second: the server stops long before the fifteen pages are through.
    settings = lastfm_settings(lastfm, lastfm_rate_per_second=2.0)
    with app_server(tmp_path, pg_url, **settings) as first:
        async with httpx.AsyncClient(base_url=first.url) as http:
            started = (await http.post("/api/admin/import/lastfm", json={"user": "rj"})).json()
            await wait_import(http, started["import_id"], until=lambda d: d["imported"] >= 400)
    # The server stopped: the job handed its lease back, the import keeps its place.
    async with db() as session:
        row = (await session.execute(text("SELECT status, imported, cursor FROM imports"))).mappings().one()
    assert row["status"] == "running" and 400 <= row["imported"] < 3000
    assert row["cursor"]["to"] == min(s.uts for s in scrobbles[: row["imported"]])
    assert await scalar(db, "SELECT count(*) FROM listen_events") == row["imported"]
    assert await scalar(db, "SELECT lease_owner FROM jobs") is None
    # Nothing was left half-done: no connection of the stopped server waits in a transaction.
    idle = "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
    assert await scalar(db, idle) == 0

    lastfm.requests.clear()
    with app_server(tmp_path, pg_url, **settings) as second:
        async with httpx.AsyncClient(base_url=second.url) as http:
            done = await wait_import(http, started["import_id"])
    assert (done["status"], done["imported"], done["duplicates"]) == ("done", 3000, 0)
    assert await scalar(db, "SELECT count(*) FROM listen_events") == 3000
    await assert_no_duplicated_listens(db)
    # It went on from the cursor: the first request after the restart asks for older scrobbles only.
    first_asked = next(r.query for r in lastfm.requests if r.query.get("method") == "user.getrecenttracks")
    assert first_asked["to"] == str(row["cursor"]["to"])


async def test_last_fm_failing_leaves_it_running_with_the_reason_then_it_finishes(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession], lastfm: FakeLastfm
) -> None:
    lastfm.add_user("rj", _history(lastfm, 300))
    # One request a second: the test has a second after the first page to break the second.
    url = serve(start_background=True, **lastfm_settings(lastfm, lastfm_rate_per_second=1.0))
    async with httpx.AsyncClient(base_url=url) as http:
        lastfm.fail_next(16, times=1)  # the check rides through one retry
        started = await http.post("/api/admin/import/lastfm", json={"user": "rj"})
        assert started.status_code == 202, started.text
        import_id = started.json()["import_id"]
        await wait_import(http, import_id, until=lambda d: d["imported"] == 200)
        lastfm.fail_next(16, times=4)  # more than the client's retries: the job tries again later
        waiting = await wait_import(http, import_id, until=lambda d: d["error"] is not None, seconds=30)
        assert waiting["status"] == "running" and "tried again shortly" in waiting["error"]
        assert "temporarily unavailable" in waiting["error"]
        # Later has come: the job is due now.
        async with db() as session:
            await session.execute(text("UPDATE jobs SET next_at = now()"))
            await session.execute(text("SELECT pg_notify('haunt_fm_work', 'jobs')"))
            await session.commit()
        done = await wait_import(http, import_id)
    assert (done["status"], done["imported"], done["duplicates"], done["error"]) == ("done", 300, 0, None)
