"""POST /api/history/webhook and GET /api/history/recent over HTTP on the real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

Factory = async_sessionmaker[AsyncSession]


async def count(db: Factory, table: str) -> int:
    async with db() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_seed_example_logs_a_listen(client: httpx.AsyncClient, db: Factory) -> None:
    response = await client.post(
        "/api/history/webhook",
        json={"title": "Paranoid Android", "artist": "Radiohead", "album": "OK Computer"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "logged"
    assert body["profile"] == "default"
    assert isinstance(body["event_id"], int) and isinstance(body["track_id"], int)
    recent = (await client.get("/api/history/recent")).json()["events"]
    assert recent[0]["title"] == "Paranoid Android"
    assert recent[0]["album"] == "OK Computer"
    assert recent[0]["profile"] == "default"
    assert datetime.fromisoformat(recent[0]["played_at"]).utcoffset() is not None
    async with db() as session:
        listened = (await session.execute(text("SELECT listened FROM tracks"))).scalar_one()
    assert listened is True


async def test_full_payload_is_stored(client: httpx.AsyncClient) -> None:
    await client.post("/api/profiles", json={"name": "antialias", "display_name": "Me"})
    payload = {
        "title": "Paranoid Android",
        "artist": "Radiohead",
        "album": "OK Computer",
        "speaker_name": "Study speaker",
        "speaker_entity": "media_player.study_speaker_2",
        "profile": "antialias",
        "played_at": "2026-11-20T21:04:00+00:00",
        "media_content_id": "applemusic://track/1097861387",
        "duration_s": 383,
    }
    response = await client.post("/api/history/webhook", json=payload)
    assert response.status_code == 201
    assert response.json()["profile"] == "antialias"
    event = (await client.get("/api/history/recent", params={"profile": "antialias"})).json()["events"][0]
    assert event["speaker_name"] == "Study speaker"
    assert event["speaker_entity"] == "media_player.study_speaker_2"
    assert datetime.fromisoformat(event["played_at"]) == datetime(2026, 11, 20, 21, 4, tzinfo=UTC)
    assert event["media_content_id"] == "applemusic://track/1097861387"
    assert event["duration_s"] == 383


async def test_duplicate_within_60_seconds(client: httpx.AsyncClient, db: Factory) -> None:
    t0 = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
    first = await client.post(
        "/api/history/webhook", json={"title": "Creep", "artist": "Radiohead", "played_at": t0.isoformat()}
    )
    assert first.status_code == 201
    # Same song under another spelling, 59 s later: a duplicate.
    dup = await client.post(
        "/api/history/webhook",
        json={
            "title": "Creep - Remastered 2008",
            "artist": "RADIOHEAD",
            "played_at": (t0 + timedelta(seconds=59)).isoformat(),
        },
    )
    assert dup.status_code == 200
    assert dup.json()["status"] == "duplicate"
    assert dup.json()["event_id"] == first.json()["event_id"]
    assert dup.json()["track_id"] == first.json()["track_id"]
    # 60 s later is a new listen.
    later = await client.post(
        "/api/history/webhook",
        json={"title": "Creep", "artist": "Radiohead", "played_at": (t0 + timedelta(seconds=60)).isoformat()},
    )
    assert later.status_code == 201
    # Earlier by 30 s: within 60 s of the first, a duplicate.
    earlier = await client.post(
        "/api/history/webhook",
        json={"title": "Creep", "artist": "Radiohead", "played_at": (t0 - timedelta(seconds=30)).isoformat()},
    )
    assert earlier.status_code == 200
    assert await count(db, "listen_events") == 2
    assert await count(db, "tracks") == 1


async def test_same_track_for_two_profiles_is_two_listens(client: httpx.AsyncClient, db: Factory) -> None:
    await client.post("/api/profiles", json={"name": "kid"})
    at = "2026-11-20T21:00:00+00:00"
    a = await client.post("/api/history/webhook", json={"title": "X", "artist": "Y", "played_at": at})
    b = await client.post(
        "/api/history/webhook", json={"title": "X", "artist": "Y", "played_at": at, "profile": "kid"}
    )
    assert (a.status_code, b.status_code) == (201, 201)
    assert await count(db, "listen_events") == 2


async def test_identical_listens_at_the_same_instant_are_stored_once(
    client: httpx.AsyncClient, db: Factory
) -> None:
    body = {"title": "Karma Police", "artist": "Radiohead", "played_at": "2026-11-20T21:00:00Z"}
    responses = await asyncio.gather(*[client.post("/api/history/webhook", json=body) for _ in range(20)])
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and codes.count(200) == 19
    assert len({r.json()["event_id"] for r in responses}) == 1
    assert await count(db, "listen_events") == 1
    assert await count(db, "tracks") == 1


async def test_database_refuses_a_duplicate_even_without_the_service(db: Factory) -> None:
    from sqlalchemy.exc import IntegrityError

    async with db() as session:
        track = (
            await session.execute(
                text(
                    "INSERT INTO tracks (title, artist, norm_artist, norm_title, norm_key) "
                    "VALUES ('a','b','b','a','b\x1fa') RETURNING id"
                )
            )
        ).scalar_one()
        profile = (await session.execute(text("SELECT id FROM profiles"))).scalar_one()
        insert = text(
            "INSERT INTO listen_events (track_id, profile_id, played_at, title, artist) "
            "VALUES (:t, :p, :at, 'a', 'b')"
        )
        at = datetime(2026, 1, 1, tzinfo=UTC)
        await session.execute(insert, {"t": track, "p": profile, "at": at})
        with pytest.raises(IntegrityError):
            await session.execute(insert, {"t": track, "p": profile, "at": at + timedelta(seconds=10)})


async def test_profile_resolution_order(client: httpx.AsyncClient) -> None:
    await client.post("/api/profiles", json={"name": "antialias"})
    await client.post("/api/profiles", json={"name": "kid"})
    put = await client.put(
        "/api/profiles/antialias/speakers",
        json={"speakers": ["Study speaker", "media_player.kitchen_stereo_2"]},
    )
    assert put.status_code == 200

    async def log(**extra: str) -> str:
        r = await client.post(
            "/api/history/webhook", json={"title": f"T{len(extra)}{extra}", "artist": "A", **extra}
        )
        assert r.status_code == 201, r.text
        return r.json()["profile"]

    assert await log(speaker_name="study SPEAKER") == "antialias"  # name, case-insensitive
    assert await log(speaker_entity="media_player.kitchen_stereo_2") == "antialias"  # entity
    assert await log(speaker_name="Study speaker", profile="kid") == "kid"  # explicit wins
    assert await log(speaker_name="Garage Wifi") == "default"  # unmapped
    assert await log() == "default"


async def test_unknown_or_invalid_profile_never_drops_the_listen(
    client: httpx.AsyncClient, db: Factory
) -> None:
    r = await client.post("/api/history/webhook", json={"title": "A", "artist": "B", "profile": "ghost"})
    assert r.status_code == 201
    assert r.json()["profile"] == "default"
    assert "ghost" in r.json()["note"]
    r = await client.post("/api/history/webhook", json={"title": "C", "artist": "B", "profile": "Not Valid!"})
    assert r.status_code == 201 and r.json()["profile"] == "default"
    assert await count(db, "listen_events") == 2


@pytest.mark.parametrize(
    "body",
    [
        {"artist": "Radiohead"},
        {"title": "Creep"},
        {"title": "   ", "artist": "Radiohead"},
        {"title": "Creep", "artist": ""},
        {"title": 42, "artist": "Radiohead"},
        {"title": ["Creep"], "artist": "Radiohead"},
        {"title": "\u200b", "artist": "Radiohead"},  # zero-width space only
        {"title": "Creep", "artist": " \u200d\u2060\ufeff "},  # joiners, word joiner, BOM
        {"title": "Cr\u0000eep", "artist": "Radiohead"},
        {"title": "x" * 5000, "artist": "Radiohead"},
        [],
        "just a string",
        None,
    ],
)
async def test_bad_input_is_422_and_writes_nothing(
    client: httpx.AsyncClient, db: Factory, body: object
) -> None:
    r = await client.post("/api/history/webhook", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]
    assert await count(db, "listen_events") == 0
    assert await count(db, "tracks") == 0


async def test_malformed_json_and_huge_bodies(client: httpx.AsyncClient, db: Factory) -> None:
    r = await client.post(
        "/api/history/webhook",
        content=b'{"title": "x", "artist":',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"]
    big = b'{"title": "x", "artist": "y", "album": "' + b"a" * (70 * 1024) + b'"}'
    r = await client.post("/api/history/webhook", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert "64 KiB" in r.json()["detail"]

    async def chunks():  # no Content-Length: the cap applies to the stream too
        yield b'{"title": "x", "artist": "y", "album": "'
        for _ in range(80):
            yield b"a" * 1024
        yield b'"}'

    r = await client.post(
        "/api/history/webhook", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert await count(db, "listen_events") == 0


async def test_naive_played_at_is_utc_and_offsets_are_converted(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/history/webhook", json={"title": "A", "artist": "B", "played_at": "2026-11-20T10:00:00"}
    )
    await client.post(
        "/api/history/webhook", json={"title": "C", "artist": "B", "played_at": "2026-11-20T12:00:00+02:00"}
    )
    events = (await client.get("/api/history/recent")).json()["events"]
    times = {e["title"]: datetime.fromisoformat(e["played_at"]) for e in events}
    assert times["A"] == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert times["C"] == datetime(2026, 11, 20, 10, tzinfo=UTC)


async def test_recent_orders_filters_and_limits(client: httpx.AsyncClient) -> None:
    await client.post("/api/profiles", json={"name": "kid"})
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(5):
        await client.post(
            "/api/history/webhook",
            json={
                "title": f"Song {i}",
                "artist": "A",
                "played_at": (base + timedelta(minutes=i)).isoformat(),
                "profile": "kid" if i % 2 else None,
            },
        )
    events = (await client.get("/api/history/recent", params={"limit": 3})).json()["events"]
    assert [e["title"] for e in events] == ["Song 4", "Song 3", "Song 2"]
    kid = (await client.get("/api/history/recent", params={"profile": "kid"})).json()["events"]
    assert [e["title"] for e in kid] == ["Song 3", "Song 1"]
    assert all(e["profile"] == "kid" for e in kid)
    assert (await client.get("/api/history/recent", params={"profile": "ghost"})).status_code == 404
    for bad in (0, 501, -1, "ten"):
        r = await client.get("/api/history/recent", params={"limit": bad})
        assert r.status_code == 422, bad
    assert (await client.get("/api/history/recent", params={"limit": 500})).status_code == 200
    assert (await client.get("/api/history/recent", params={"limit": 1})).status_code == 200


async def test_an_empty_profile_filter_means_no_filter(client: httpx.AsyncClient) -> None:
    await client.post("/api/profiles", json={"name": "kid"})
    await client.post("/api/history/webhook", json={"title": "A", "artist": "X", "profile": "kid"})
    await client.post("/api/history/webhook", json={"title": "B", "artist": "X"})
    r = await client.get("/api/history/recent", params={"profile": ""})
    assert r.status_code == 200
    assert {e["title"] for e in r.json()["events"]} == {"A", "B"}
    assert (await client.get("/api/playlists", params={"profile": ""})).status_code == 200
