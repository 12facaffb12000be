"""GET /api/recommendations over HTTP, against the real database with controlled vectors."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from tests.recommendations.support import (
    Factory,
    StandInTextModel,
    add_track,
    add_tracks,
    axis,
    cache_vibe,
    ids,
    listen,
    similar,
    taste_of,
    text_tower,
    toward,
    unit,
)
from tests.support.text_worker import text_worker

E0, E1, E2, E3 = axis(0), axis(1), axis(2), axis(3)


async def _taste_world(db: Factory) -> dict[str, int]:
    """default listened to one track at e0; candidates at known cosines to e0 (and e1)."""
    t = {"heard": await add_track(db, "Heard", E0)}
    await listen(db, t["heard"])
    for name, cos in [("c90", 0.9), ("c70", 0.7), ("c50", 0.5), ("c10", 0.1), ("cneg", -0.3)]:
        t[name] = await add_track(db, name, toward(E0, E1, cos), album=f"Album {name}")
    t["unembedded"] = await add_track(db, "NoVector")
    return t


async def test_ordered_by_cosine_and_listened_excluded(client: httpx.AsyncClient, db: Factory) -> None:
    t = await _taste_world(db)
    r = await client.get("/api/recommendations", params={"limit": 50})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["profile"] == "default" and body["vibe"] is None and body["alpha"] == 0.5
    assert body["basis"] == "taste"
    assert ids(body) == [t["c90"], t["c70"], t["c50"], t["c10"], t["cneg"]]
    scores = [row["score"] for row in body["recommendations"]]
    assert scores == pytest.approx([0.9, 0.7, 0.5, 0.1, -0.3], abs=1e-5)
    first = body["recommendations"][0]
    assert first["title"] == "c90" and first["artist"] == "Artist" and first["album"] == "Album c90"
    assert first["preview_url"] == "https://p/c90.m4a" and first["because"] == []
    assert (await client.get("/api/recommendations", params={"limit": 2})).json()["recommendations"][1][
        "track_id"
    ] == t["c70"]


async def test_profiles_are_isolated(client: httpx.AsyncClient, db: Factory) -> None:
    t = await _taste_world(db)
    # bob heard c90 and likes the e1 side: default still gets c90; bob never does.
    assert (await client.post("/api/profiles", json={"name": "bob"})).status_code == 201
    bobs = await add_track(db, "BobsFavourite", E1)
    await listen(db, bobs, profile="bob")
    await listen(db, t["c90"], profile="bob")
    mine = ids((await client.get("/api/recommendations")).json())
    assert mine[0] == t["c90"] and bobs in mine
    theirs = (await client.get("/api/recommendations", params={"profile": "bob"})).json()
    assert theirs["profile"] == "bob"
    assert t["c90"] not in ids(theirs) and bobs not in ids(theirs)
    assert t["heard"] in ids(theirs)  # default's listen is not bob's
    # bob's taste: e1 and c90's vector, one listen each
    bob_taste = unit(E1 + toward(E0, E1, 0.9))
    rest = {tid: toward(E0, E1, cos) for tid, cos in [(t["c70"], 0.7), (t["c50"], 0.5), (t["c10"], 0.1)]}
    rest[t["cneg"]] = toward(E0, E1, -0.3)
    rest[t["heard"]] = E0
    expected = sorted(rest, key=lambda tid: -float(bob_taste @ rest[tid]))
    assert ids(theirs) == expected
    assert theirs["recommendations"][0]["score"] == pytest.approx(
        float(bob_taste @ rest[expected[0]]), abs=1e-5
    )


async def test_dislikes_by_vibe_context(client: httpx.AsyncClient, db: Factory) -> None:
    t = await _taste_world(db)
    await cache_vibe(db, "late night", E0)
    r = await client.post("/api/feedback", json={"track_id": t["c90"], "rating": "down"})
    assert r.status_code == 201
    r = await client.post(
        "/api/feedback", json={"track_id": t["c70"], "rating": "down", "vibe": "  Late   NIGHT "}
    )
    assert r.status_code == 201 and r.json()["vibe"] == "Late   NIGHT"
    plain = ids((await client.get("/api/recommendations")).json())
    assert t["c90"] not in plain and plain[0] == t["c70"]  # the vibe-specific down does not apply here
    other = ids(
        (await client.get("/api/recommendations", params={"vibe": "sunny morning", "alpha": 1})).json()
    )
    assert t["c90"] not in other and t["c70"] in other
    night = (await client.get("/api/recommendations", params={"vibe": "late night", "alpha": 0.5})).json()
    assert night["vibe"] == "late night"
    assert t["c90"] not in ids(night) and t["c70"] not in ids(night) and ids(night)[0] == t["c50"]
    # another profile is not affected
    await listen(db, t["heard"], profile="bob")
    assert ids((await client.get("/api/recommendations", params={"profile": "bob"})).json())[0] == t["c90"]
    # thumbs up does not hide a track
    await client.post("/api/feedback", json={"track_id": t["c50"], "rating": "up", "vibe": "late night"})
    assert t["c50"] in ids((await client.get("/api/recommendations", params={"vibe": "late night"})).json())


async def test_alpha_extremes_and_blend(client: httpx.AsyncClient, db: Factory) -> None:
    heard = await add_track(db, "Heard", E0)
    await listen(db, heard)
    rng = np.random.default_rng(7)
    vectors = np.stack([unit(v) for v in rng.standard_normal((60, 512))])
    # Lean half of them toward the taste and the rest toward the vibe, so the orders differ.
    vectors[:30] = np.stack([unit(v + 2.5 * E0) for v in vectors[:30]])
    vectors[30:] = np.stack([unit(v + 2.5 * E2) for v in vectors[30:]])
    tids = await add_tracks(db, vectors)
    await cache_vibe(db, "dark techno", E2)

    def expected(q: np.ndarray) -> list[int]:
        sims = vectors @ unit(q)
        return [tids[i] for i in np.argsort(-sims, kind="stable")[:20]]

    pure_taste = (await client.get("/api/recommendations", params={"limit": 20})).json()
    alpha1 = (
        await client.get("/api/recommendations", params={"limit": 20, "vibe": "Dark Techno", "alpha": 1})
    ).json()
    assert alpha1["recommendations"] == pure_taste["recommendations"]
    assert alpha1["basis"] == "taste" and alpha1["alpha"] == 1.0 and alpha1["vibe"] == "Dark Techno"
    assert ids(pure_taste) == expected(E0)

    alpha0 = (
        await client.get("/api/recommendations", params={"limit": 20, "vibe": "dark techno", "alpha": 0})
    ).json()
    assert alpha0["basis"] == "vibe" and ids(alpha0) == expected(E2)
    assert [r["score"] for r in alpha0["recommendations"]] == pytest.approx(
        sorted((vectors @ E2).tolist(), reverse=True)[:20], abs=1e-5
    )
    assert set(ids(alpha0)).isdisjoint(ids(pure_taste))

    blend = (
        await client.get("/api/recommendations", params={"limit": 20, "vibe": "dark techno", "alpha": 0.3})
    ).json()
    assert blend["basis"] == "taste+vibe"
    q = unit(0.3 * E0 + 0.7 * E2)
    assert ids(blend) == expected(q)
    assert blend["recommendations"][0]["score"] == pytest.approx(float(np.max(vectors @ q)), abs=1e-5)
    # default alpha is 0.5
    half = (await client.get("/api/recommendations", params={"limit": 20, "vibe": "dark techno"})).json()
    assert half["alpha"] == 0.5 and ids(half) == expected(unit(E0 + E2))


async def test_vibe_only_without_taste_and_409_without_either(client: httpx.AsyncClient, db: Factory) -> None:
    a = await add_track(db, "A", toward(E3, E1, 0.8))
    b = await add_track(db, "B", toward(E3, E1, 0.2))
    await cache_vibe(db, "rainy day", E3)
    r = await client.get("/api/recommendations")
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "listen" in detail.lower() and "vibe" in detail and "embedd" in detail
    # listened but not yet embedded: still no taste
    heard = await add_track(db, "Heard")
    await listen(db, heard)
    assert (await client.get("/api/recommendations")).status_code == 409
    for alpha in (0, 0.5, 1):
        body = (await client.get("/api/recommendations", params={"vibe": "rainy day", "alpha": alpha})).json()
        assert body["basis"] == "vibe" and ids(body) == [a, b], alpha
        assert body["recommendations"][0]["score"] == pytest.approx(0.8, abs=1e-5)


async def test_limit_is_filled_under_heavy_exclusion(client: httpx.AsyncClient, db: Factory) -> None:
    rng = np.random.default_rng(3)
    center = unit(rng.standard_normal(512))
    vectors = np.stack([unit(center + 0.6 * unit(rng.standard_normal(512))) for _ in range(300)])
    tids = await add_tracks(db, vectors)
    seed = await add_track(db, "Seed", center)
    await listen(db, seed)
    order = [tids[i] for i in np.argsort(-(vectors @ center))]
    nearest200 = order[:200]
    for tid in nearest200[:120]:
        await listen(db, tid)
    async with db() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO feedback (profile_id, track_id, rating, vibe, vibe_norm) "
                "SELECT p.id, t, 'down', 'general', 'general' "
                "FROM profiles p, unnest(CAST(:ids AS bigint[])) t "
                "WHERE p.name = 'default'"
            ),
            {"ids": nearest200[120:]},
        )
    # The taste is the mean of 121 listened tracks; recompute the exact answer the same way.
    r = await client.post("/api/admin/build-taste-profile")
    assert r.status_code == 200 and r.json()["tracks_used"] == 121
    body = (await client.get("/api/recommendations", params={"limit": 50})).json()
    got = ids(body)
    assert len(got) == 50 and len(set(got)) == 50
    taste, _, _ = await taste_of(db)
    assert taste is not None
    eligible = np.array(order[200:])
    by_id = dict(zip(tids, vectors, strict=True))
    sims = np.stack([by_id[t] for t in eligible]) @ taste
    assert got == [int(t) for t in eligible[np.argsort(-sims, kind="stable")[:50]]]
    assert set(got).isdisjoint(nearest200) and seed not in got
    scores = [row["score"] for row in body["recommendations"]]
    assert scores == sorted(scores, reverse=True)
    # More than exist: every eligible track, once.
    everything = ids((await client.get("/api/recommendations", params={"limit": 500})).json())
    assert sorted(everything) == sorted(order[200:])


async def test_because_names_the_listened_seeds(client: httpx.AsyncClient, db: Factory) -> None:
    mine = await add_track(db, "My Seed", E0, artist="Seeder")
    theirs = await add_track(db, "Their Seed", E1, artist="Other")
    cand = await add_track(db, "Found", toward(E0, E1, 0.9))
    orphan = await add_track(db, "Orphan", toward(E0, E1, 0.8))
    other_only = await add_track(db, "OtherOnly", toward(E0, E1, 0.7))
    await listen(db, mine)
    await listen(db, theirs, profile="bob")
    await similar(db, mine, cand, 0.42)
    await similar(db, theirs, cand, 0.99)
    await similar(db, theirs, other_only, 0.5)
    body = (await client.get("/api/recommendations")).json()
    rows = {r["track_id"]: r for r in body["recommendations"]}
    assert rows[cand]["because"] == [
        {"track_id": mine, "title": "My Seed", "artist": "Seeder", "match": 0.42}
    ]
    assert rows[orphan]["because"] == []
    assert rows[other_only]["because"] == [
        {"track_id": theirs, "title": "Their Seed", "artist": "Other", "match": 0.5}
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "ten"},
        {"alpha": -0.01},
        {"alpha": 1.01},
        {"alpha": "nan"},
        {"alpha": "inf"},
        {"alpha": "half"},
        {"vibe": "x" * 201},
        {"vibe": "chill\x00"},
    ],
)
async def test_validation_422(client: httpx.AsyncClient, db: Factory, params: dict[str, Any]) -> None:
    await cache_vibe(db, "chill", E0)
    r = await client.get("/api/recommendations", params={"vibe": "chill", **params})
    assert r.status_code == 422, (params, r.text)
    assert r.json()["detail"]


async def test_unknown_profile_404(client: httpx.AsyncClient, db: Factory) -> None:
    r = await client.get("/api/recommendations", params={"profile": "ghost"})
    assert r.status_code == 404 and "ghost" in r.json()["detail"]
    t = await _taste_world(db)
    r = await client.get("/api/recommendations?profile=&limit=1")  # empty = left out = default
    assert r.status_code == 200 and r.json()["profile"] == "default" and ids(r.json()) == [t["c90"]]


async def test_blank_vibe_counts_as_none(client: httpx.AsyncClient, db: Factory) -> None:
    t = await _taste_world(db)
    body = (await client.get("/api/recommendations", params={"vibe": "   ", "alpha": 0})).json()
    assert body["vibe"] is None and body["basis"] == "taste" and ids(body)[0] == t["c90"]


# --- how the vibe gets its vector ----------------------------------------------------------


async def test_vibe_embedded_in_process_and_cached(serve_app: Any, db: Factory) -> None:
    a = await add_track(db, "A", toward(E3, E1, 0.6))
    await text_tower(db)  # the in-process worker found its text tower healthy
    model = StandInTextModel({"chill ambient": E3})
    url, _app = serve_app(embedder=model)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.get("/api/recommendations", params={"vibe": "  Chill   Ambient ", "alpha": 0})
        assert r.status_code == 200, r.text
        assert r.json()["vibe"] == "Chill   Ambient" and ids(r.json()) == [a]
        assert r.json()["recommendations"][0]["score"] == pytest.approx(0.6, abs=1e-5)
        assert r.json()["vibe_basis"] == {"text": True, "tags": [], "tag_tracks": 0, "discovering": False}
        assert model.calls == [["chill ambient"]]  # the normalised text is what gets embedded
        again = await http.get("/api/recommendations", params={"vibe": "chill ambient", "alpha": 0})
        assert again.status_code == 200 and model.calls == [["chill ambient"]]
    async with db() as s:
        row = (await s.execute(text("SELECT text, status, model FROM text_embeddings"))).one()
    assert tuple(row) == ("Chill   Ambient", "done", model.model_id)


async def test_in_process_model_failure_is_503(serve_app: Any, db: Factory) -> None:
    await add_track(db, "A", E3)
    await text_tower(db)
    url, _app = serve_app(embedder=StandInTextModel(fail=True))
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.get("/api/recommendations", params={"vibe": "anything", "alpha": 0})
    assert r.status_code == 503 and "could not embed" in r.json()["detail"]


async def test_request_waits_for_a_worker_to_embed_the_vibe(
    client: httpx.AsyncClient, db: Factory, tmp_path: Any, pg_url: str
) -> None:
    a = await add_track(db, "A", toward(E2, E1, 0.75))
    b = await add_track(db, "B", toward(E2, E1, 0.25))
    worker_model = StandInTextModel({"sunday morning": E2})
    text_embedder = await text_worker(db, worker_model, tmp_path=tmp_path, pg_url=pg_url, limit=8)

    async def worker() -> int:
        # Another process's worker loop: poll the queue until it has embedded something.
        for _ in range(200):
            done = await text_embedder.process_texts()
            if done:
                return done
            await asyncio.sleep(0.05)
        return 0

    request = asyncio.create_task(
        client.get("/api/recommendations", params={"vibe": "Sunday Morning", "alpha": 0})
    )
    claimed = await worker()
    r = await request
    assert claimed == 1 and worker_model.calls == [["sunday morning"]]
    assert r.status_code == 200, r.text
    assert ids(r.json()) == [a, b] and r.json()["basis"] == "vibe"
    async with db() as s:
        status = (await s.execute(text("SELECT status FROM text_embeddings"))).scalar_one()
    assert status == "done"
    assert await text_embedder.process_texts() == 0


async def test_a_vibe_cached_by_another_text_model_is_embedded_again(
    client: httpx.AsyncClient, db: Factory, tmp_path: Any, pg_url: str
) -> None:
    a = await add_track(db, "A", E1)
    b = await add_track(db, "B", E2)
    await cache_vibe(db, "sunday morning", E1, model="laion/some-older-clap")  # another vector space
    worker_model = StandInTextModel({"sunday morning": E2})
    text_embedder = await text_worker(db, worker_model, tmp_path=tmp_path, pg_url=pg_url, limit=8)

    async def worker() -> int:
        for _ in range(200):
            if done := await text_embedder.process_texts():
                return done
            await asyncio.sleep(0.05)
        return 0

    request = asyncio.create_task(
        client.get("/api/recommendations", params={"vibe": "sunday morning", "alpha": 0})
    )
    assert await worker() == 1
    r = await request
    assert r.status_code == 200, r.text
    assert ids(r.json())[:2] == [b, a]  # ranked by the new model's vector, not the stale one
    async with db() as s:
        model = (await s.execute(text("SELECT model FROM text_embeddings"))).scalar_one()
    assert model == worker_model.model_id


async def test_without_a_worker_that_vouches_for_the_text_tower_an_untagged_vibe_is_409(
    serve: Any, db: Factory
) -> None:
    await add_track(db, "A", E2)
    url = serve(vibe_embed_timeout_seconds=600)  # it must not wait for a worker that isn't there
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.get("/api/recommendations", params={"vibe": "nobody home", "alpha": 0})
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["error"] == "vibe_not_understood" and body["suggestions"] == []
        assert "'nobody home' matched no Last.fm tag" in body["detail"]
        assert "CLAP text can't be used yet because no embedding worker is running" in body["detail"]
        assert "HAUNTFM_LASTFM_API_KEY" in body["detail"]  # no key: no tags, no discovery
        # A collapsed tower is said so.
        await text_tower(db, ok=False)
        r = await http.get("/api/recommendations", params={"vibe": "nobody home", "alpha": 0})
        assert r.status_code == 409 and "failed its self-test" in r.json()["detail"]
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM text_embeddings"))).scalar_one() == 0


async def test_worker_failure_is_503_and_the_text_is_retried(
    serve: Any, db: Factory, tmp_path: Any, pg_url: str
) -> None:
    await add_track(db, "A", E2)
    url = serve(vibe_embed_timeout_seconds=5)
    broken, fixed = StandInTextModel(fail=True), StandInTextModel({"glitch": E2})
    embedder = await text_worker(db, broken, tmp_path=tmp_path, pg_url=pg_url)

    async def worker(model: StandInTextModel) -> None:
        embedder.embedder = model
        for _ in range(100):
            if await embedder.process_texts():
                return
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        request = asyncio.create_task(http.get("/api/recommendations", params={"vibe": "glitch", "alpha": 0}))
        await worker(broken)
        r = await request
        assert r.status_code == 503 and "text tower exploded" in r.json()["detail"]
        request = asyncio.create_task(http.get("/api/recommendations", params={"vibe": "glitch", "alpha": 0}))
        await worker(fixed)
        r = await request
        assert r.status_code == 200 and r.json()["recommendations"][0]["score"] == pytest.approx(
            1.0, abs=1e-5
        )
