"""POST/GET/DELETE /api/feedback over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.recommendations.support import Factory, add_track, axis, ids, listen, profile_id


async def test_post_shape_and_replacement(client: httpx.AsyncClient, db: Factory) -> None:
    t = await add_track(db, "Song", artist="Band")
    r = await client.post("/api/feedback", json={"track_id": t, "rating": "down"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert {
        k: first[k] for k in ("track_id", "profile", "rating", "vibe", "title", "artist", "replaced")
    } == {
        "track_id": t,
        "profile": "default",
        "rating": "down",
        "vibe": "general",
        "title": "Song",
        "artist": "Band",
        "replaced": False,
    }
    assert isinstance(first["feedback_id"], int)
    assert datetime.fromisoformat(first["created_at"]).utcoffset() is not None
    # Same profile, track and vibe context (after normalisation): the rating is replaced.
    r = await client.post("/api/feedback", json={"track_id": t, "rating": "up", "vibe": " GENERAL "})
    assert r.status_code == 201
    second = r.json()
    assert second["feedback_id"] == first["feedback_id"] and second["rating"] == "up" and second["replaced"]
    assert datetime.fromisoformat(second["created_at"]) > datetime.fromisoformat(first["created_at"])
    # Another vibe or another profile is another opinion.
    await client.post("/api/profiles", json={"name": "kid"})
    r1 = await client.post("/api/feedback", json={"track_id": t, "rating": "down", "vibe": "party"})
    r2 = await client.post("/api/feedback", json={"track_id": t, "rating": "down", "profile": "kid"})
    assert r1.status_code == r2.status_code == 201
    assert len({first["feedback_id"], r1.json()["feedback_id"], r2.json()["feedback_id"]}) == 3
    assert r2.json()["profile"] == "kid"
    async with db() as s:
        rows = (await s.execute(text("SELECT rating, vibe_norm FROM feedback ORDER BY id"))).all()
    assert [tuple(r) for r in rows] == [("up", "general"), ("down", "party"), ("down", "general")]


async def test_list_newest_first_and_by_profile(client: httpx.AsyncClient, db: Factory) -> None:
    a, b = await add_track(db, "A"), await add_track(db, "B")
    await client.post("/api/profiles", json={"name": "kid"})
    await client.post("/api/feedback", json={"track_id": a, "rating": "up"})
    await client.post("/api/feedback", json={"track_id": b, "rating": "down", "vibe": "Road Trip"})
    await client.post("/api/feedback", json={"track_id": a, "rating": "down", "profile": "kid"})
    every = (await client.get("/api/feedback")).json()["feedback"]
    assert [(f["title"], f["profile"]) for f in every] == [("A", "kid"), ("B", "default"), ("A", "default")]
    assert set(every[0]) >= {
        "feedback_id",
        "track_id",
        "title",
        "artist",
        "profile",
        "rating",
        "vibe",
        "created_at",
    }
    mine = (await client.get("/api/feedback", params={"profile": "default"})).json()["feedback"]
    assert [(f["title"], f["rating"], f["vibe"]) for f in mine] == [
        ("B", "down", "Road Trip"),
        ("A", "up", "general"),
    ]
    assert len((await client.get("/api/feedback", params={"limit": 1})).json()["feedback"]) == 1
    assert len((await client.get("/api/feedback?profile=")).json()["feedback"]) == 3
    assert (await client.get("/api/feedback", params={"profile": "ghost"})).status_code == 404
    for limit in (0, 501):
        assert (await client.get("/api/feedback", params={"limit": limit})).status_code == 422


async def test_delete(client: httpx.AsyncClient, db: Factory) -> None:
    t = await add_track(db, "A", axis(0))
    await listen(db, t)
    fb = (await client.post("/api/feedback", json={"track_id": t, "rating": "down"})).json()
    async with db() as s:
        before = (
            await s.execute(text("SELECT activity_at FROM profiles WHERE name = 'default'"))
        ).scalar_one()
    r = await client.delete(f"/api/feedback/{fb['feedback_id']}")
    assert r.status_code == 200 and r.json()["deleted"] is True and r.json()["track_id"] == t
    async with db() as s:
        after = (
            await s.execute(text("SELECT activity_at FROM profiles WHERE name = 'default'"))
        ).scalar_one()
        assert (await s.execute(text("SELECT count(*) FROM feedback"))).scalar_one() == 0
    assert after > before
    again = await client.delete(f"/api/feedback/{fb['feedback_id']}")
    assert again.status_code == 404 and str(fb["feedback_id"]) in again.json()["detail"]
    for bad in ("abc", "0", "-3", str(2**63)):
        assert (await client.delete(f"/api/feedback/{bad}")).status_code == 422, bad
    assert (await client.get("/api/feedback")).json()["feedback"] == []


async def test_unknown_track_or_profile_is_404(client: httpx.AsyncClient, db: Factory) -> None:
    t = await add_track(db, "A")
    r = await client.post("/api/feedback", json={"track_id": t + 1000, "rating": "up"})
    assert r.status_code == 404 and str(t + 1000) in r.json()["detail"]
    r = await client.post("/api/feedback", json={"track_id": t, "rating": "up", "profile": "ghost"})
    assert r.status_code == 404 and "ghost" in r.json()["detail"]
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM feedback"))).scalar_one() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"rating": "up"},
        {"track_id": 1},
        {"track_id": 1, "rating": "meh"},
        {"track_id": 1, "rating": "UP "},
        {"track_id": 1, "rating": None},
        {"track_id": "abc", "rating": "up"},
        {"track_id": 1.5, "rating": "up"},
        {"track_id": [1], "rating": "up"},
        {"track_id": 0, "rating": "up"},
        {"track_id": 2**63, "rating": "up"},
        {"track_id": 1, "rating": "up", "vibe": ""},
        {"track_id": 1, "rating": "up", "vibe": "   "},
        {"track_id": 1, "rating": "up", "vibe": "x" * 201},
        {"track_id": 1, "rating": "up", "vibe": "bad\x00vibe"},
        {"track_id": 1, "rating": "up", "vibe": 5},
        {"track_id": 1, "rating": "up", "profile": 7},
    ],
)
async def test_validation_422(client: httpx.AsyncClient, db: Factory, body: dict[str, Any]) -> None:
    await add_track(db, "A")
    r = await client.post("/api/feedback", json=body)
    assert r.status_code == 422, (body, r.text)


async def test_not_json_is_422(client: httpx.AsyncClient, db: Factory) -> None:
    r = await client.post("/api/feedback", content=b"thumbs up", headers={"content-type": "application/json"})
    assert r.status_code == 422


async def test_vibe_at_the_length_limit_is_accepted(client: httpx.AsyncClient, db: Factory) -> None:
    t = await add_track(db, "A")
    r = await client.post(
        "/api/feedback", json={"track_id": t, "rating": "up", "vibe": " " + "x" * 198 + " "}
    )
    assert r.status_code == 201 and r.json()["vibe"] == "x" * 198
    # The limit is the one the schema states: the text as sent, at most 200 characters.
    r = await client.post("/api/feedback", json={"track_id": t, "rating": "up", "vibe": " " + "x" * 200})
    assert r.status_code == 422 and "at most 200" in r.text


async def test_down_in_general_hides_the_track_only_for_that_profile(
    client: httpx.AsyncClient, db: Factory
) -> None:
    seed = await add_track(db, "Seed", axis(0))
    cand = await add_track(db, "Cand", axis(0) * 0.8 + axis(1) * 0.6)
    await listen(db, seed)
    await listen(db, seed, profile="kid")
    assert ids((await client.get("/api/recommendations")).json()) == [cand]
    fb = (await client.post("/api/feedback", json={"track_id": cand, "rating": "down"})).json()
    assert ids((await client.get("/api/recommendations")).json()) == []
    assert ids((await client.get("/api/recommendations", params={"profile": "kid"})).json()) == [cand]
    await client.delete(f"/api/feedback/{fb['feedback_id']}")
    assert ids((await client.get("/api/recommendations")).json()) == [cand]
    assert await profile_id(db, "kid") > 0
