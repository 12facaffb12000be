"""Named profiles and speaker mappings over HTTP."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

Factory = async_sessionmaker[AsyncSession]


async def test_default_profile_always_exists(client: httpx.AsyncClient) -> None:
    profiles = (await client.get("/api/profiles")).json()["profiles"]
    assert [p["name"] for p in profiles] == ["default"]
    p = profiles[0]
    for key in ("name", "display_name", "listens", "tracks", "feedback", "speakers", "taste_built_at"):
        assert key in p
    assert (await client.get("/api/profiles/default")).status_code == 200


async def test_seed_examples_verbatim(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/profiles", json={"name": "antialias", "display_name": "Me"})
    assert r.status_code == 201
    assert r.json()["name"] == "antialias" and r.json()["display_name"] == "Me"
    r = await client.put(
        "/api/profiles/antialias/speakers", json={"speakers": ["Study speaker", "Master bathroom speaker"]}
    )
    assert r.status_code == 200
    assert r.json() == {"profile": "antialias", "speakers": ["Master bathroom speaker", "Study speaker"]}
    r = await client.post(
        "/api/history/webhook", json={"title": "Song", "artist": "Artist", "profile": "antialias"}
    )
    assert r.status_code == 201 and r.json()["profile"] == "antialias"
    got = (await client.get("/api/profiles/antialias")).json()
    assert got["listens"] == 1 and got["tracks"] == 1
    assert got["speakers"] == ["Master bathroom speaker", "Study speaker"]
    assert (await client.get("/api/profiles/antialias/speakers")).json()["speakers"] == [
        "Master bathroom speaker",
        "Study speaker",
    ]


async def test_create_conflicts_and_validation(client: httpx.AsyncClient, db: Factory) -> None:
    assert (await client.post("/api/profiles", json={"name": "kid"})).status_code == 201
    dup = await client.post("/api/profiles", json={"name": "kid"})
    assert dup.status_code == 409 and "already exists" in dup.json()["detail"]
    for bad in ["", "Kid", "-kid", "k id", "a" * 65, "kid!", 5, None]:
        r = await client.post("/api/profiles", json={"name": bad})
        assert r.status_code == 422, bad
    assert (await client.post("/api/profiles", json={"name": "a" * 64})).status_code == 201
    assert (await client.post("/api/profiles", json={})).status_code == 422
    async with db() as session:
        assert (await session.execute(text("SELECT count(*) FROM profiles"))).scalar_one() == 3


async def test_unknown_profile_is_404(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/profiles/ghost"),
        ("DELETE", "/api/profiles/ghost"),
        ("GET", "/api/profiles/ghost/speakers"),
    ]:
        r = await client.request(method, path)
        assert r.status_code == 404 and "ghost" in r.json()["detail"]
    r = await client.put("/api/profiles/ghost/speakers", json={"speakers": ["x"]})
    assert r.status_code == 404


async def test_delete_moves_listens_to_default(client: httpx.AsyncClient, db: Factory) -> None:
    await client.post("/api/profiles", json={"name": "kid"})
    await client.put("/api/profiles/kid/speakers", json={"speakers": ["Kids Room speaker"]})
    at = "2026-11-20T21:00:00+00:00"
    await client.post(
        "/api/history/webhook", json={"title": "A", "artist": "X", "profile": "kid", "played_at": at}
    )
    await client.post("/api/history/webhook", json={"title": "B", "artist": "X", "profile": "kid"})
    # Default already has "A" at the same instant: moving kid's would duplicate it.
    await client.post("/api/history/webhook", json={"title": "A", "artist": "X", "played_at": at})
    r = await client.delete("/api/profiles/kid")
    assert r.status_code == 200
    assert (await client.get("/api/profiles/kid")).status_code == 404
    default = (await client.get("/api/profiles/default")).json()
    assert default["listens"] == 2 and default["tracks"] == 2
    # The speaker mapping went with the profile: the speaker now logs to default.
    r = await client.post(
        "/api/history/webhook", json={"title": "C", "artist": "X", "speaker_name": "Kids Room speaker"}
    )
    assert r.json()["profile"] == "default"


async def test_default_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    r = await client.delete("/api/profiles/default")
    assert r.status_code == 409 and "default" in r.json()["detail"]


async def test_speaker_moves_between_profiles_and_mapping_is_replaced(client: httpx.AsyncClient) -> None:
    await client.post("/api/profiles", json={"name": "a"})
    await client.post("/api/profiles", json={"name": "b"})
    await client.put("/api/profiles/a/speakers", json={"speakers": ["Study speaker", "Kitchen stereo"]})
    r = await client.put("/api/profiles/b/speakers", json={"speakers": ["STUDY SPEAKER"]})
    assert r.json()["speakers"] == ["STUDY SPEAKER"]
    assert (await client.get("/api/profiles/a/speakers")).json()["speakers"] == ["Kitchen stereo"]
    r = await client.put("/api/profiles/a/speakers", json={"speakers": []})
    assert r.json()["speakers"] == []
    r = await client.post(
        "/api/history/webhook", json={"title": "T", "artist": "A", "speaker_name": "study speaker"}
    )
    assert r.json()["profile"] == "b"


@pytest.mark.parametrize(
    "body", [{}, {"speakers": "Study"}, {"speakers": [""]}, {"speakers": [1]}, {"speakers": ["ok", "  "]}]
)
async def test_bad_speaker_bodies_change_nothing(client: httpx.AsyncClient, body: object) -> None:
    await client.post("/api/profiles", json={"name": "a"})
    await client.put("/api/profiles/a/speakers", json={"speakers": ["Study speaker"]})
    r = await client.put("/api/profiles/a/speakers", json=body)
    assert r.status_code == 422
    assert (await client.get("/api/profiles/a/speakers")).json()["speakers"] == ["Study speaker"]


async def test_taste_built_at_stays_empty_until_a_taste_exists(client: httpx.AsyncClient) -> None:
    await client.post("/api/history/webhook", json={"title": "Not embedded yet", "artist": "X"})
    assert (await client.get("/api/recommendations")).status_code == 409  # checks, finds nothing to build
    assert (await client.get("/api/profiles/default")).json()["taste_built_at"] is None
    status = (await client.get("/api/status")).json()
    assert status["profiles"][0]["taste_built_at"] is None
