"""Taste profiles: POST /api/admin/build-taste-profile, weighting, and automatic rebuilds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text

from tests.recommendations.support import (
    Factory,
    add_track,
    axis,
    embed,
    ids,
    listen,
    taste_of,
    toward,
    unit,
)

E0, E1, E2, E3 = axis(0), axis(1), axis(2), axis(3)


async def test_build_answers_and_stores(client: httpx.AsyncClient, db: Factory) -> None:
    a, b = await add_track(db, "A", E0), await add_track(db, "B", E1)
    await listen(db, a, times=3)
    await listen(db, b)
    r = await client.post("/api/admin/build-taste-profile")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["profile"] == "default" and body["tracks_used"] == 2
    built_at = datetime.fromisoformat(body["built_at"])
    assert built_at.utcoffset() is not None
    vec, stored_at, used = await taste_of(db)
    assert vec is not None and used == 2 and stored_at == built_at
    # play count: three listens of A against one of B (all today)
    assert vec == pytest.approx(unit(3 * E0 + E1), abs=1e-4)
    assert float(np.linalg.norm(vec)) == pytest.approx(1.0, abs=1e-5)
    r = await client.post("/api/admin/build-taste-profile", params={"profile": "default"})
    assert r.status_code == 200 and datetime.fromisoformat(r.json()["built_at"]) > built_at


async def test_404_and_409(client: httpx.AsyncClient, db: Factory) -> None:
    r = await client.post("/api/admin/build-taste-profile", params={"profile": "ghost"})
    assert r.status_code == 404 and "ghost" in r.json()["detail"]
    r = await client.post("/api/admin/build-taste-profile")
    assert r.status_code == 409 and "no embedded listened or liked track" in r.json()["detail"]
    heard = await add_track(db, "Heard")  # listened, preview not embedded yet
    await listen(db, heard)
    r = await client.post("/api/admin/build-taste-profile")
    assert r.status_code == 409 and "embedding worker" in r.json()["detail"]
    await embed(db, heard, E0)
    r = await client.post("/api/admin/build-taste-profile")
    assert r.status_code == 200 and r.json()["tracks_used"] == 1


async def test_recency_decay(serve: Any, db: Factory) -> None:
    old, new = await add_track(db, "Old", E0), await add_track(db, "New", E1)
    await listen(db, old, days_ago=90, times=4)  # 4 x 2^(-90/30) = 0.5
    await listen(db, new, days_ago=0)  # 1 x 2^0 = 1
    near_old = await add_track(db, "NearOld", toward(E0, E2, 0.9))
    near_new = await add_track(db, "NearNew", toward(E1, E2, 0.9))
    async with httpx.AsyncClient(base_url=serve(), timeout=30) as http:
        assert (await http.post("/api/admin/build-taste-profile")).status_code == 200
        vec, _, _ = await taste_of(db)
        assert vec == pytest.approx(unit(0.5 * E0 + 1.0 * E1), abs=1e-3)
        # The recent single listen outweighs the old heavy one.
        assert ids((await http.get("/api/recommendations")).json())[:2] == [near_new, near_old]
    # With a 90-day half-life the old listens still weigh 4 x 0.5 = 2 and win.
    async with httpx.AsyncClient(base_url=serve(taste_half_life_days=90), timeout=30) as http:
        assert (await http.post("/api/admin/build-taste-profile")).status_code == 200
        vec, _, _ = await taste_of(db)
        assert vec == pytest.approx(unit(2.0 * E0 + 1.0 * E1), abs=1e-3)
        assert ids((await http.get("/api/recommendations")).json())[:2] == [near_old, near_new]


async def test_likes_count_and_general_dislikes_never_do(client: httpx.AsyncClient, db: Factory) -> None:
    a, b = await add_track(db, "A", E0), await add_track(db, "B", E1)
    liked = await add_track(db, "Liked", E2)  # never listened
    await listen(db, a, times=2)
    await listen(db, b, times=1)
    r = await client.post("/api/feedback", json={"track_id": liked, "rating": "up", "vibe": "workout"})
    assert r.status_code == 201
    body = (await client.post("/api/admin/build-taste-profile")).json()
    assert body["tracks_used"] == 3
    vec, _, _ = await taste_of(db)
    # weights scaled so the heaviest listened track is 1: A 1.0, B 0.5; a like weighs 1.0
    assert vec == pytest.approx(unit(1.0 * E0 + 0.5 * E1 + 1.0 * E2), abs=1e-3)

    # a down in another vibe keeps B in the taste; a down in general takes it out
    await client.post("/api/feedback", json={"track_id": b, "rating": "down", "vibe": "workout"})
    assert (await client.post("/api/admin/build-taste-profile")).json()["tracks_used"] == 3
    await client.post("/api/feedback", json={"track_id": b, "rating": "down", "vibe": "General"})
    assert (await client.post("/api/admin/build-taste-profile")).json()["tracks_used"] == 2
    vec, _, _ = await taste_of(db)
    assert vec == pytest.approx(unit(E0 + E2), abs=1e-3)
    # even a liked track does not count once it is thumbed down in general
    await client.post("/api/feedback", json={"track_id": liked, "rating": "down"})
    vec, _, _ = await taste_of(db)
    assert (await client.post("/api/admin/build-taste-profile")).json()["tracks_used"] == 1
    vec, _, _ = await taste_of(db)
    assert vec == pytest.approx(E0, abs=1e-5)
    # only likes, no listens: a like alone builds a taste
    await client.post("/api/profiles", json={"name": "fan"})
    await client.post("/api/feedback", json={"track_id": b, "rating": "up", "profile": "fan"})
    r = await client.post("/api/admin/build-taste-profile", params={"profile": "fan"})
    assert r.status_code == 200 and r.json() == {**r.json(), "profile": "fan", "tracks_used": 1}


async def test_stale_taste_is_rebuilt_before_use(client: httpx.AsyncClient, db: Factory) -> None:
    first = await add_track(db, "First", E0, artist="Band")
    await listen(db, first)
    near0 = await add_track(db, "Near0", toward(E0, E2, 0.95))
    near3 = await add_track(db, "Near3", toward(E3, E2, 0.95))
    assert ids((await client.get("/api/recommendations")).json())[0] == near0
    _, built1, _ = await taste_of(db)
    # Fresh: asking again does not rebuild.
    await client.get("/api/recommendations")
    assert (await taste_of(db))[1] == built1

    # A new listen through the webhook (the track already exists, embedded at e3, many plays).
    for minute in range(5):
        r = await client.post(
            "/api/history/webhook",
            json={
                "title": "Near3",
                "artist": "Artist",
                # Minutes apart, just before now (a time in the future would be replaced by now).
                "played_at": (datetime.now(UTC) - timedelta(minutes=10 - 2 * minute)).isoformat(),
            },
        )
        assert r.status_code == 201 and r.json()["track_id"] == near3, r.text
    body = (await client.get("/api/recommendations")).json()
    vec, built2, used = await taste_of(db)
    assert built2 > built1 and used == 2
    assert datetime.fromisoformat(body["taste_built_at"]) == built2
    assert near3 not in ids(body)  # now listened
    assert vec is not None and float(vec @ E3) > float(vec @ E0)

    # Deleting feedback leaves no timestamp behind: activity_at makes the profile stale.
    fb = (await client.post("/api/feedback", json={"track_id": first, "rating": "down"})).json()
    await client.get("/api/recommendations")
    assert (await taste_of(db))[2] == 1
    assert (await client.delete(f"/api/feedback/{fb['feedback_id']}")).status_code == 200
    await client.get("/api/recommendations")
    assert (await taste_of(db))[2] == 2

    # A listened track that gets its embedding later is picked up too.
    late = await add_track(db, "Late")
    await listen(db, late)
    await client.get("/api/recommendations")
    assert (await taste_of(db))[2] == 2
    await embed(db, late, E1)
    await client.get("/api/recommendations")
    assert (await taste_of(db))[2] == 3


async def test_staleness_is_per_profile(client: httpx.AsyncClient, db: Factory) -> None:
    a = await add_track(db, "A", E0)
    await listen(db, a)
    await listen(db, a, profile="bob")
    await add_track(db, "Cand", E1)
    await client.get("/api/recommendations")
    await client.get("/api/recommendations", params={"profile": "bob"})
    _, bob_built, _ = await taste_of(db, "bob")
    _, default_built, _ = await taste_of(db)
    b = await add_track(db, "B", E2)
    await listen(db, b)  # default only
    await client.get("/api/recommendations", params={"profile": "bob"})
    await client.get("/api/recommendations")
    assert (await taste_of(db, "bob"))[1] == bob_built
    assert (await taste_of(db))[1] > default_built


async def test_build_over_a_thousand_tracks_matches_numpy(client: httpx.AsyncClient, db: Factory) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((1000, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    async with db() as s, s.begin():
        await s.execute(
            text(
                """
                INSERT INTO tracks (title, artist, norm_artist, norm_title, norm_key, listened)
                SELECT 't' || g, 'a', 'a', 't' || g, 'a' || chr(31) || 't' || g, true
                FROM generate_series(1, 1000) g
                """
            )
        )
        await s.execute(
            text(
                "INSERT INTO listen_events (track_id, profile_id, played_at, title, artist) "
                "SELECT t.id, p.id, now() - (t.id % 90) * interval '1 day' - k * interval '5 minutes', "
                "'x', 'y' "
                "FROM tracks t, profiles p, generate_series(1, 3) k WHERE p.name = 'default'"
            )
        )
    async with db() as s, s.begin():
        tids = [int(x) for x in (await s.execute(text("SELECT id FROM tracks ORDER BY id"))).scalars()]
        await s.execute(
            text(
                "INSERT INTO track_embeddings (track_id, embedding, model, pipeline_version) "
                "VALUES (:t, :v, 'laion/larger_clap_music', 1)"
            ).bindparams(bindparam("v", type_=Vector(512))),
            [{"t": t, "v": v} for t, v in zip(tids, vectors, strict=True)],
        )
    r = await client.post("/api/admin/build-taste-profile")
    assert r.status_code == 200 and r.json()["tracks_used"] == 1000
    assert len(r.json()["tastes"]) == 1  # random directions are no genres: one taste
    # Same answer as numpy: ages are whole days (mod 90) plus 5-minute steps.
    ages = np.array([(t % 90) for t in tids], dtype=np.float64)
    w = 3 * 2 ** (-ages / 30.0)  # the 5-minute offsets are equal for every track
    expected = unit((w[:, None] * vectors).sum(axis=0))
    vec, _, _ = await taste_of(db)
    assert vec == pytest.approx(expected, abs=2e-3)
