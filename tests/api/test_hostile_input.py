"""Input that cannot be stored or encoded answers 4xx, writes nothing, and never reaches a 500."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

Factory = async_sessionmaker[AsyncSession]


async def count(db: Factory, table: str) -> int:
    async with db() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/profiles/%00"),
        ("DELETE", "/api/profiles/%00"),
        ("GET", "/api/profiles/a%00b/speakers"),
        ("GET", "/api/history/recent?profile=%00"),
        ("GET", "/api/feedback?profile=%00"),
        ("GET", "/api/recommendations?profile=%00&vibe=x"),
        ("POST", "/api/admin/build-taste-profile?profile=%00"),
        ("GET", "/api/recommendations?vibe=a%00b"),
        ("GET", "/api/history/recent?profile=%ED%A0%80"),  # a UTF-16 surrogate, UTF-8 encoded
    ],
)
async def test_nul_and_surrogates_in_urls_are_422(client: httpx.AsyncClient, method: str, path: str) -> None:
    r = await client.request(method, path)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/api/history/webhook", rb'{"title": "a\u0000b", "artist": "x"}'),
        ("/api/history/webhook", rb'{"title": "\ud800", "artist": "x"}'),
        ("/api/history/webhook", rb'{"title": "x", "artist": "y", "album": "\udc00"}'),
        ("/api/profiles", rb'{"name": "kid", "display_name": "\ud83d"}'),
        ("/api/feedback", rb'{"track_id": 1, "rating": "up", "vibe": "a\u0000"}'),
        ("/api/playlists/generate", rb'{"profile": "\u0000"}'),
    ],
)
async def test_unstorable_text_in_bodies_is_422_and_writes_nothing(
    client: httpx.AsyncClient, db: Factory, path: str, raw: bytes
) -> None:
    r = await client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert "cannot be stored" in r.json()["detail"]
    assert await count(db, "listen_events") == 0
    assert await count(db, "profiles") == 1


async def test_emoji_and_accents_are_fine(client: httpx.AsyncClient) -> None:
    raw = '{"title": "Hoppípolla \\ud83c\\udfb5", "artist": "Sigur Rós 🎶"}'.encode()
    r = await client.post("/api/history/webhook", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    events = (await client.get("/api/history/recent")).json()["events"]
    assert events[0]["title"] == "Hoppípolla 🎵" and events[0]["artist"] == "Sigur Rós 🎶"


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/api/history/webhook", b'{"title": "a", "artist": "b", "duration_s": NaN}'),
        ("/api/history/webhook", b'{"title": "a", "artist": "b", "duration_s": 1e400}'),
        ("/api/playlists/generate", b'{"alpha": NaN}'),
        ("/api/playlists/generate", b'{"alpha": Infinity, "known_pct": -Infinity}'),
        ("/api/admin/discover", b'{"limit": NaN}'),
    ],
)
async def test_nan_and_infinity_in_json_are_422(client: httpx.AsyncClient, path: str, raw: bytes) -> None:
    r = await client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code in (409, 422), r.text  # discover without a Last.fm key may answer 409 first
    assert r.json()["detail"]


async def test_empty_query_parameters_read_as_omitted(client: httpx.AsyncClient) -> None:
    for path in (
        "/api/feedback?profile=&limit=",
        "/api/history/recent?limit=&profile=",
        "/api/playlists?limit=",
    ):
        r = await client.get(path)
        assert r.status_code == 200, (path, r.text)


async def test_deleting_a_profile_while_its_listens_arrive_loses_nothing(
    client: httpx.AsyncClient, db: Factory
) -> None:
    for round_ in range(10):
        await client.post("/api/profiles", json={"name": "kid"})

        async def listen(i: int, round_: int = round_) -> httpx.Response:
            return await client.post(
                "/api/history/webhook", json={"title": f"R{round_} S{i}", "artist": "A", "profile": "kid"}
            )

        results = await asyncio.gather(*(listen(i) for i in range(25)), client.delete("/api/profiles/kid"))
        listens, deleted = results[:-1], results[-1]
        assert deleted.status_code == 200, deleted.text
        assert all(r.status_code == 201 for r in listens), [r.text for r in listens if r.status_code != 201]
        assert all(r.json()["profile"] in ("kid", "default") for r in listens)
    assert await count(db, "listen_events") == 10 * 25
    async with db() as session:
        names = (await session.execute(text("SELECT name FROM profiles"))).scalars().all()
    assert names == ["default"]
