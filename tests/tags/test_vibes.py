"""Vibes grounded in Last.fm tags, over HTTP: the tag centroid, the text tower only when it
works, the cache, the 409 that says what was understood, and vibe discovery (tag lookups)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from haunt_fm.runtime import open_runtime
from haunt_fm.worker.jobs import job_runner
from tests.conftest import make_settings
from tests.discovery.support import LASTFM_KEY, rows
from tests.fakes import FakeLastfm
from tests.recommendations.support import (
    Factory,
    add_track,
    axis,
    cache_vibe,
    embed,
    ids,
    listen,
    text_tower,
    toward,
    unit,
)
from tests.tags.support import scalar, tag

E = [axis(i) for i in range(8)]


def centroid(vectors: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """One tag's direction: the weighted sum of its tracks' unit vectors, normalised."""
    return unit(sum(w * v for w, v in zip(weights, vectors, strict=True)))


async def library(db: Factory) -> dict[str, Any]:
    """Three genres at known places; the tags as Last.fm users write them."""
    lib: dict[str, Any] = {"vectors": {}}

    async def track(name: str, vector: np.ndarray | None, tags: dict[str, int]) -> int:
        tid = await add_track(db, name, vector, artist=f"Artist {name}")
        if vector is not None:
            lib["vectors"][tid] = vector
        await tag(db, tid, tags)
        lib[name] = tid
        return tid

    await track("chill1", toward(E[1], E[4], 0.95), {"chill": 100, "Chillout": 70, "seen live": 40})
    await track("chill2", toward(E[1], E[5], 0.9), {"Chill": 60, "mellow": 50})
    await track("chill3", toward(E[1], E[6], 0.8), {"chill": 30, "favourites": 100})
    await track("metal1", toward(E[2], E[4], 0.95), {"Heavy Metal": 100, "metal": 80})
    await track("metal2", toward(E[2], E[5], 0.9), {"heavy metal": 90, "metal": 90})
    await track("thrash", toward(E[3], E[2], 0.6), {"metal": 100, "thrash metal": 90})
    await track("jazz1", toward(E[6], E[7], 0.9), {"jazz": 100})
    await track("unembedded chill", None, {"chill": 100})
    for i in range(6):  # untagged neighbours
        await track(f"other{i}", unit(np.random.default_rng(i).standard_normal(512)), {})
    return lib


def ranked(lib: dict[str, Any], query: np.ndarray) -> list[int]:
    scores = {tid: float(v @ query) for tid, v in lib["vectors"].items()}
    return sorted(scores, key=lambda tid: -scores[tid])


async def vibe(http: httpx.AsyncClient, words: str, alpha: float = 0.0, **params: Any) -> httpx.Response:
    return await http.get(
        "/api/recommendations", params={"vibe": words, "alpha": alpha, "limit": 50, **params}
    )


async def test_a_vibe_is_the_centroid_of_the_tracks_tagged_with_it(
    client: httpx.AsyncClient, db: Factory
) -> None:
    lib = await library(db)
    v = lib["vectors"]
    chill = centroid([v[lib["chill1"]], v[lib["chill2"]], v[lib["chill3"]]], [100, 60, 30])
    r = await vibe(client, "chill")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["basis"] == "vibe"
    # No worker vouches for the text tower: the tags alone. Three embedded tracks carry "chill";
    # the fourth has no vector yet. No Last.fm key here: nothing to discover with.
    assert body["vibe_basis"] == {"text": False, "tags": ["chill"], "tag_tracks": 3, "discovering": False}
    assert ids(body) == ranked(lib, chill)
    assert ids(body)[:3] == [lib["chill1"], lib["chill2"], lib["chill3"]]
    assert body["recommendations"][0]["score"] == pytest.approx(float(v[lib["chill1"]] @ chill), abs=1e-5)

    # The whole phrase first: "heavy metal" is a tag, so "metal" alone is not used.
    heavy = (await vibe(client, "Heavy-Metal")).json()
    assert heavy["vibe_basis"]["tags"] == ["heavy metal"] and heavy["vibe_basis"]["tag_tracks"] == 2
    expected = centroid([v[lib["metal1"]], v[lib["metal2"]]], [100, 90])
    assert ids(heavy) == ranked(lib, expected)
    metal = (await vibe(client, "metal")).json()
    assert metal["vibe_basis"]["tags"] == ["metal"] and metal["vibe_basis"]["tag_tracks"] == 3
    assert ids(metal) == ranked(
        lib, centroid([v[lib["metal1"]], v[lib["metal2"]], v[lib["thrash"]]], [80, 90, 100])
    )

    # Words, stop words dropped; each matched tag counts the same, whatever its number of tracks.
    both = (await vibe(client, "some chill jazz music please")).json()
    assert both["vibe_basis"]["tags"] == ["chill", "jazz"] and both["vibe_basis"]["tag_tracks"] == 4
    assert ids(both) == ranked(lib, unit(chill + v[lib["jazz1"]]))


async def test_the_text_tower_joins_only_when_it_passed_its_self_test(
    client: httpx.AsyncClient, db: Factory
) -> None:
    lib = await library(db)
    v = lib["vectors"]
    chill = centroid([v[lib["chill1"]], v[lib["chill2"]], v[lib["chill3"]]], [100, 60, 30])
    await cache_vibe(db, "chill", E[5])  # a worker whose tower is healthy embedded the text
    body = (await vibe(client, "chill")).json()
    assert body["vibe_basis"]["text"] is True and body["vibe_basis"]["tags"] == ["chill"]
    blended = unit(0.7 * chill + 0.3 * E[5])
    assert ids(body) == ranked(lib, blended)
    assert body["recommendations"][0]["score"] == pytest.approx(
        max(float(x @ blended) for x in v.values()), abs=1e-5
    )
    # A word no tag carries: the text alone.
    await cache_vibe(db, "glacial", E[7])
    alone = (await vibe(client, "glacial")).json()
    assert alone["vibe_basis"] == {"text": True, "tags": [], "tag_tracks": 0, "discovering": False}
    assert ids(alone) == ranked(lib, E[7])
    # The tower is found collapsed: the cached text vector is not used any more.
    await text_tower(db, ok=False)
    collapsed = (await vibe(client, "chill")).json()
    assert collapsed["vibe_basis"]["text"] is False and ids(collapsed) == ranked(lib, chill)
    r = await vibe(client, "glacial")
    assert r.status_code == 409 and r.json()["error"] == "vibe_not_understood"


async def test_the_cached_vibe_vector_follows_tags_and_embeddings(
    client: httpx.AsyncClient, db: Factory
) -> None:
    lib = await library(db)
    v = lib["vectors"]
    first = (await vibe(client, "chill")).json()
    assert first["vibe_basis"]["tag_tracks"] == 3
    assert await scalar(db, "SELECT tag_tracks FROM vibe_groundings WHERE vibe_norm = 'chill'") == 3
    # How tightly its tracks agree: the weighted mean resultant length of their vectors.
    members = [v[lib["chill1"]], v[lib["chill2"]], v[lib["chill3"]]]
    agree = np.linalg.norm(100 * members[0] + 60 * members[1] + 30 * members[2]) / 190
    coherence = await scalar(db, "SELECT coherence FROM vibe_groundings WHERE vibe_norm = 'chill'")
    assert coherence == pytest.approx(agree, abs=1e-5)
    # Nothing changed: the cached row serves (computed_at stays).
    computed = await scalar(db, "SELECT computed_at FROM vibe_groundings WHERE vibe_norm = 'chill'")
    assert ids((await vibe(client, "chill")).json()) == ids(first)
    assert await scalar(db, "SELECT computed_at FROM vibe_groundings WHERE vibe_norm = 'chill'") == computed
    # The unembedded chill track gets its vector: it joins the centroid.
    late = toward(E[1], E[7], 0.99)
    await embed(db, lib["unembedded chill"], late)
    v[lib["unembedded chill"]] = late
    now = (await vibe(client, "chill")).json()
    assert now["vibe_basis"]["tag_tracks"] == 4
    chill = centroid([v[lib["chill1"]], v[lib["chill2"]], v[lib["chill3"]], late], [100, 60, 30, 100])
    assert ids(now) == ranked(lib, chill)
    # Last.fm's tags for chill1 change (it is not chill any more): it leaves the centroid.
    await tag(db, lib["chill1"], {"ambient": 100})
    later = (await vibe(client, "chill")).json()
    assert later["vibe_basis"]["tag_tracks"] == 3
    assert ids(later) == ranked(lib, centroid([v[lib["chill2"]], v[lib["chill3"]], late], [60, 30, 100]))


async def test_vectors_of_another_model_are_left_out_of_every_query(
    serve: Callable[..., str], db: Factory
) -> None:
    lib = await library(db)
    v = lib["vectors"]
    # chill1 and the listened track were embedded by an earlier model and are being re-embedded.
    await embed(db, lib["chill1"], v.pop(lib["chill1"]), model="laion/larger_clap_general")
    heard = await add_track(db, "Heard", E[1])
    await listen(db, heard)
    await embed(db, heard, E[1], model="laion/larger_clap_general")
    async with httpx.AsyncClient(base_url=serve(), timeout=30) as http:
        body = (await vibe(http, "chill")).json()
        assert body["vibe_basis"]["tag_tracks"] == 2
        chill = centroid([v[lib["chill2"]], v[lib["chill3"]]], [60, 30])
        assert ids(body) == ranked(lib, chill) and lib["chill1"] not in ids(body)
        # No taste either: its only listened track's vector is from the other model.
        r = await http.get("/api/recommendations")
        assert r.status_code == 409 and "no embedded listened" in r.json()["detail"]
        status = (await http.get("/api/status")).json()
        assert status["pipeline"]["embedding"]["outdated"] == 2
        assert status["pipeline"]["embedding"]["model"] == "laion/larger_clap_music"
        # Switch the service to that model: now only those two vectors count.
        other = serve(clap_model="laion/larger_clap_general")
    async with httpx.AsyncClient(base_url=other, timeout=30) as http:
        r = await http.get("/api/recommendations")
        assert r.status_code == 200 and r.json()["basis"] == "taste"
        assert ids(r.json()) == [lib["chill1"]]
        assert (await vibe(http, "chill")).json()["vibe_basis"]["tag_tracks"] == 1
        status = (await http.get("/api/status")).json()
        assert status["pipeline"]["embedding"]["outdated"] == len(v)


async def test_alpha_one_answers_the_taste_and_says_how_the_vibe_was_understood(
    client: httpx.AsyncClient, db: Factory
) -> None:
    lib = await library(db)
    heard = await add_track(db, "Heard", E[2])
    await listen(db, heard)
    r = await vibe(client, "polka", alpha=1)
    assert r.status_code == 200 and r.json()["basis"] == "taste"
    assert r.json()["vibe_basis"] == {"text": False, "tags": [], "tag_tracks": 0, "discovering": False}
    assert ids(r.json())[:2] == [lib["metal1"], lib["metal2"]]
    # Without a vibe there is no vibe_basis.
    assert (await client.get("/api/recommendations")).json()["vibe_basis"] is None
    # Any other alpha needs the vibe: 409, never the taste alone as if the vibe had worked.
    r = await vibe(client, "polka", alpha=0.9)
    assert r.status_code == 409


async def run_jobs(tmp_path: Path, pg_url: str, lastfm: FakeLastfm) -> int:
    settings = make_settings(
        tmp_path,
        pg_url,
        lastfm_api_key=LASTFM_KEY,
        lastfm_api_url=lastfm.api_url,
        lastfm_rate_per_second=200.0,
    )
    async with open_runtime(settings, database_url=pg_url, pool_size=3, listen=False) as runtime:
        runner = job_runner(runtime)
        assert runner is not None
        return await runner.run_until_idle()


async def test_an_unknown_vibe_is_409_with_suggestions_and_discovery_starts(
    serve: Callable[..., str], db: Factory, lastfm: FakeLastfm, tmp_path: Path, pg_url: str
) -> None:
    await library(db)
    url = serve(lastfm_api_key=LASTFM_KEY, lastfm_api_url=lastfm.api_url)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await vibe(http, "polka")
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["error"] == "vibe_not_understood"
        # The library's most common tags that embedded tracks carry, heaviest first.
        assert body["suggestions"][:4] == ["metal", "chill", "heavy metal", "jazz"]
        assert "unembedded" not in body["suggestions"]
        assert "'polka' matched no Last.fm tag" in body["detail"]
        assert "Discovery for 'polka' has started" in body["detail"]
        jobs = await rows(db, "SELECT kind, key, status FROM jobs ORDER BY id")
        assert jobs == [{"kind": "tag_top_tracks", "key": "polka", "status": "pending"}]
        # Asked again while the lookup is queued: the same one job.
        assert (await vibe(http, "Polka")).status_code == 409
        assert await scalar(db, "SELECT count(*) FROM jobs") == 1

        assert await run_jobs(tmp_path, pg_url, lastfm) == 1  # Last.fm knows no such tag
        lookup = (await rows(db, "SELECT tag, tracks, candidates_new FROM tag_lookups"))[0]
        assert lookup == {"tag": "polka", "tracks": 0, "candidates_new": 0}
        r = await vibe(http, "polka")
        assert (
            r.status_code == 409
            and "was asked for tracks tagged 'polka' within the last day" in r.json()["detail"]
        )
        assert await scalar(db, "SELECT count(*) FROM jobs") == 1  # at most once a day per tag


async def test_a_thin_vibe_grows_the_library_toward_it(
    serve: Callable[..., str], db: Factory, lastfm: FakeLastfm, tmp_path: Path, pg_url: str
) -> None:
    lib = await library(db)
    lastfm.set_tag_tracks(
        "dark jazz",
        [
            ("Bohren & der Club of Gore", "Prowler"),
            ("Dale Cooper Quartet", "Mon Mignon"),
            ("Artist jazz1", "jazz1"),
        ],
    )
    lastfm.set_tag_tracks("jazz", [("Miles Davis", "So What")])
    url = serve(lastfm_api_key=LASTFM_KEY, lastfm_api_url=lastfm.api_url)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await vibe(http, "dark jazz")
        assert r.status_code == 200, r.text
        basis = r.json()["vibe_basis"]
        # Understood as jazz (one track: "dark jazz" is no tag of the library yet), and growing.
        assert basis == {"text": False, "tags": ["jazz"], "tag_tracks": 1, "discovering": True}
        assert ids(r.json())[0] == lib["jazz1"]
        keys = [r["key"] for r in await rows(db, "SELECT key FROM jobs ORDER BY id")]
        assert keys == ["dark jazz", "jazz"]

        assert await run_jobs(tmp_path, pg_url, lastfm) == 2
        new = await rows(
            db,
            "SELECT artist, source, discovery_score, preview_status, tags_status FROM tracks "
            "WHERE source LIKE 'tag:%' ORDER BY discovery_score DESC, artist",
        )
        assert [(t["artist"], t["source"], t["discovery_score"]) for t in new] == [
            ("Bohren & der Club of Gore", "tag:dark jazz", 1.0),
            ("Miles Davis", "tag:jazz", 1.0),
            ("Dale Cooper Quartet", "tag:dark jazz", pytest.approx(0.55)),
        ]
        # Candidates like any discovery's: previews, embedding and their own tags follow.
        assert all(t["preview_status"] == "pending" and t["tags_status"] == "pending" for t in new)
        # The known jazz track is not added twice (and keeps its source).
        assert await scalar(db, "SELECT source FROM tracks WHERE id = :id", id=lib["jazz1"]) == "lastfm"
        assert await scalar(db, "SELECT count(*) FROM track_similarities") == 0
        lookups = await rows(db, "SELECT tag, tracks, candidates_new FROM tag_lookups ORDER BY tag")
        assert lookups == [
            {"tag": "dark jazz", "tracks": 3, "candidates_new": 2},
            {"tag": "jazz", "tracks": 1, "candidates_new": 1},
        ]
        again = (await vibe(http, "dark jazz")).json()["vibe_basis"]
        assert again["discovering"] is False
        assert await scalar(db, "SELECT count(*) FROM jobs") == 2  # not again within the day


async def test_playlists_say_how_the_vibe_was_understood(client: httpx.AsyncClient, db: Factory) -> None:
    lib = await library(db)
    heard = await add_track(db, "Heard", E[6])
    await listen(db, heard, times=3)
    r = await client.post(
        "/api/playlists/generate", json={"total_tracks": 4, "known_pct": 25, "vibe": "chill", "alpha": 0}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["vibe_basis"] == {"text": False, "tags": ["chill"], "tag_tracks": 3, "discovering": False}
    new = [t["track_id"] for t in body["tracks"] if t["kind"] == "new"]
    assert new == [lib["chill1"], lib["chill2"], lib["chill3"]]
    saved = (await client.get(f"/api/playlists/{body['playlist_id']}")).json()
    assert saved["vibe_basis"] == body["vibe_basis"]
    plain = (await client.post("/api/playlists/generate", json={"total_tracks": 2})).json()
    assert plain["vibe_basis"] is None
    r = await client.post("/api/playlists/generate", json={"total_tracks": 4, "vibe": "polka"})
    assert (
        r.status_code == 409
        and r.json()["error"] == "vibe_not_understood"
        and "chill" in r.json()["suggestions"]
    )
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM playlists"))).scalar_one() == 2


async def test_the_library_and_a_profiles_tags(client: httpx.AsyncClient, db: Factory) -> None:
    lib = await library(db)
    body = (await client.get("/api/tags")).json()
    assert body["profile"] is None
    top = {t["tag"]: t for t in body["tags"]}
    assert [t["tag"] for t in body["tags"]][:3] == ["chill", "metal", "heavy metal"]
    assert top["chill"] == {"tag": "chill", "weight": 290, "tracks": 4, "embedded": 3}
    assert "seen live" not in top and "favourites" not in top
    assert [t["tag"] for t in (await client.get("/api/tags", params={"limit": 2})).json()["tags"]] == [
        "chill",
        "metal",
    ]
    await listen(db, lib["jazz1"], profile="bob")
    await listen(db, lib["metal1"], profile="bob")
    bob = (await client.get("/api/tags", params={"profile": "bob"})).json()
    assert bob["profile"] == "bob"
    assert [(t["tag"], t["weight"]) for t in bob["tags"]] == [
        ("heavy metal", 100),
        ("jazz", 100),
        ("metal", 80),
    ]
    assert (await client.get("/api/tags", params={"profile": "ghost"})).status_code == 404
    assert (await client.get("/api/tags", params={"limit": 0})).status_code == 422
    assert (await client.get("/api/tags", params={"profile": ""})).json()["profile"] is None
