"""Several tastes per profile: how they are found, shown, searched and merged (over HTTP)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from pgvector.sqlalchemy import Vector
from sqlalchemy import text

from tests.recommendations.support import (
    DIM,
    Factory,
    GenreSpace,
    add_track,
    cache_vibe,
    ids,
    listen,
    taste_of,
    unit,
)
from tests.tags.support import tag


async def _genre_tracks(
    db: Factory, space: GenreSpace, genre: str, n: int, *, prefix: str, artists: int = 0
) -> dict[int, np.ndarray]:
    """`n` embedded tracks of a genre; each its own artist unless `artists` names how many share them."""
    out: dict[int, np.ndarray] = {}
    for i in range(n):
        artist = f"{prefix} Artist {i % artists if artists else i}"
        vector = space.track(genre)
        out[await add_track(db, f"{prefix} {i}", vector, artist=artist)] = vector
    return out


async def _centroids(db: Factory, profile: str = "default") -> list[np.ndarray]:
    async with db() as s:
        rows = await s.execute(
            text(
                "SELECT pt.centroid FROM profile_tastes pt JOIN profiles p ON p.id = pt.profile_id "
                "WHERE p.name = :n ORDER BY pt.idx"
            ).columns(centroid=Vector(DIM)),
            {"n": profile},
        )
        return [np.asarray(r[0], dtype=np.float32) for r in rows]


def _genre_of(found: dict[str, dict[int, np.ndarray]]) -> dict[int, str]:
    return {tid: genre for genre, tracks in found.items() for tid in tracks}


async def test_an_eclectic_listener_gets_the_genres_they_play(client: httpx.AsyncClient, db: Factory) -> None:
    space = GenreSpace(seed=5)
    space.bridge("post-rock", "ambient", "metal")
    for genre, prefix in (("ambient", "Amb"), ("metal", "Met")):
        for tid in await _genre_tracks(db, space, genre, 15, prefix=prefix, artists=5):
            await listen(db, tid, times=2)
    candidates = {
        genre: await _genre_tracks(db, space, genre, 20, prefix=f"New {genre}")
        for genre in ("ambient", "metal", "post-rock", "jazz")
    }
    genre_of = _genre_of(candidates)

    body = (await client.get("/api/recommendations", params={"limit": 10})).json()
    got = [genre_of[t] for t in ids(body)]
    assert sum(g in ("ambient", "metal") for g in got) >= 8, got
    # Interleaved, each taste half the list (they weigh the same), never in blocks.
    assert Counter(got) == {"ambient": 5, "metal": 5}
    assert all(got[i] != got[i + 1] for i in range(len(got) - 1)), got
    assert [t["label"] for t in body["tastes"]] and len(body["tastes"]) == 2
    assert sum(t["weight"] for t in body["tastes"]) == pytest.approx(1.0, abs=1e-4)
    by_taste = {r["taste"]["index"]: genre_of[r["track_id"]] for r in body["recommendations"]}
    assert sorted(by_taste.values()) == ["ambient", "metal"]

    # The single mean of today would have recommended the genre in between, which they never play.
    mean, _, _ = await taste_of(db)
    assert mean is not None
    everything = {tid: v for tracks in candidates.values() for tid, v in tracks.items()}
    by_mean = sorted(everything, key=lambda t: -float(everything[t] @ mean))[:10]
    assert sum(genre_of[t] == "post-rock" for t in by_mean) >= 8

    profile = (await client.get("/api/profiles/default")).json()
    tastes = profile["tastes"]
    assert len(tastes) == 2 and {t["tracks"] for t in tastes} == {15}
    assert [t["weight"] for t in tastes] == pytest.approx([0.5, 0.5], abs=1e-6)
    for taste in tastes:
        prefix = "Amb" if taste["top_artists"][0].startswith("Amb") else "Met"
        assert len(taste["top_artists"]) == 3 and all(a.startswith(prefix) for a in taste["top_artists"])
        assert taste["label"] == ", ".join(taste["top_artists"][:2])


async def test_a_single_genre_listener_keeps_todays_profile(client: httpx.AsyncClient, db: Factory) -> None:
    space = GenreSpace(seed=8)
    heard = await _genre_tracks(db, space, "jazz", 12, prefix="Jazz")
    favourite = next(iter(heard))
    weights = []
    for i, tid in enumerate(heard):
        times = 40 if tid == favourite else 1 + i % 3
        await listen(db, tid, times=times, days_ago=i)
        weights.append(sum(2 ** (-(i + 2 * k / 1440) / 30) for k in range(times)))
    twin = await add_track(db, "Twin", heard[favourite], artist="Twin Artist")
    others = await _genre_tracks(db, space, "jazz", 25, prefix="More jazz")
    others.update(await _genre_tracks(db, space, "metal", 10, prefix="Metal"))

    built = (await client.post("/api/admin/build-taste-profile")).json()
    assert built["tracks_used"] == 12 and len(built["tastes"]) == 1
    assert built["tastes"][0]["weight"] == 1.0 and built["tastes"][0]["tracks"] == 12
    vec, _, _ = await taste_of(db)
    # Today's rule: the weighted mean of the unit vectors (play count x recency).
    w = np.array(weights) / max(weights)
    expected = unit((w[:, None] * np.stack(list(heard.values()))).sum(axis=0))
    assert vec == pytest.approx(expected, abs=1e-4)
    [centroid] = await _centroids(db)
    assert np.array_equal(centroid, vec)  # the one taste is exactly that vector

    body = (await client.get("/api/recommendations", params={"limit": 20})).json()
    assert ids(body)[0] == twin  # the identical-audio twin of the favourite ranks first
    everything = {twin: heard[favourite], **others}
    exact = sorted(everything, key=lambda t: -float(everything[t] @ vec))[:20]
    assert ids(body) == exact
    assert [r["score"] for r in body["recommendations"]] == pytest.approx(
        [float(everything[t] @ vec) for t in exact], abs=1e-4
    )
    assert all(r["taste"]["index"] == 0 for r in body["recommendations"])


async def test_each_taste_knows_how_near_its_own_tracks_lie(client: httpx.AsyncClient, db: Factory) -> None:
    # The cohesion is the weighted mean cosine of a taste's tracks to its centroid, so one of them
    # at least lies that near: an index search from the centroid that finds nothing as near went
    # astray (recommendations then search exactly).
    space = GenreSpace(seed=31)
    heard: dict[str, dict[int, tuple[np.ndarray, int]]] = {}
    for genre, prefix in (("ambient", "Amb"), ("metal", "Met")):
        tracks = await _genre_tracks(db, space, genre, 12, prefix=prefix, artists=4)
        heard[genre] = {}
        for i, (tid, vector) in enumerate(tracks.items()):
            await listen(db, tid, times=1 + i % 3)
            heard[genre][tid] = (vector, 1 + i % 3)
    assert len((await client.post("/api/admin/build-taste-profile")).json()["tastes"]) == 2
    async with db() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT pt.centroid, pt.cohesion FROM profile_tastes pt "
                    "JOIN profiles p ON p.id = pt.profile_id WHERE p.name = 'default' ORDER BY pt.idx"
                ).columns(centroid=Vector(DIM))
            )
        ).all()
    genres = []
    for centroid, cohesion in rows:
        centroid = np.asarray(centroid, dtype=np.float64)
        genre = max(heard, key=lambda g: np.mean([v @ centroid for v, _ in heard[g].values()]))
        genres.append(genre)
        cosines = np.array([v @ centroid for v, _ in heard[genre].values()])
        plays = np.array([n for _, n in heard[genre].values()], dtype=np.float64)
        # Listened minutes apart today: each track weighs (almost exactly) its play count.
        assert cohesion == pytest.approx(float(plays @ cosines / plays.sum()), abs=1e-3)
        assert cosines.min() < cohesion < cosines.max()
    assert sorted(genres) == ["ambient", "metal"]


async def test_tastes_share_the_list_by_weight(client: httpx.AsyncClient, db: Factory) -> None:
    space = GenreSpace(seed=11)
    for genre, n in (("chill", 20), ("heavy metal", 10)):
        for tid in await _genre_tracks(db, space, genre, n, prefix=genre):
            await listen(db, tid)
    candidates = {
        g: await _genre_tracks(db, space, g, 15, prefix=f"new {g}") for g in ("chill", "heavy metal")
    }
    genre_of = _genre_of(candidates)
    vectors = {tid: v for tracks in candidates.values() for tid, v in tracks.items()}

    body = (await client.get("/api/recommendations", params={"limit": 9})).json()
    assert [round(t["weight"], 3) for t in body["tastes"]] == [0.667, 0.333]
    order = "".join("C" if genre_of[t] == "chill" else "M" for t in ids(body))
    assert order == "CMCCMCCMC"  # two of three places to the heavier taste, interleaved
    centroids = await _centroids(db)
    for rec in body["recommendations"]:
        # The score is the cosine to the taste that found the track.
        centroid = centroids[rec["taste"]["index"]]
        assert rec["score"] == pytest.approx(float(vectors[rec["track_id"]] @ centroid), abs=1e-4)
    scores_of = {i: [r["score"] for r in body["recommendations"] if r["taste"]["index"] == i] for i in (0, 1)}
    assert all(s == sorted(s, reverse=True) for s in scores_of.values())


async def test_vibes_blend_with_each_taste(client: httpx.AsyncClient, db: Factory) -> None:
    space = GenreSpace(seed=13)
    for genre in ("ambient", "jazz"):
        for tid in await _genre_tracks(db, space, genre, 10, prefix=genre):
            await listen(db, tid)
    vectors: dict[int, np.ndarray] = {}
    for genre in ("ambient", "jazz", "lofi"):
        vectors.update(await _genre_tracks(db, space, genre, 12, prefix=f"new {genre}"))
    vibe = space.genre("lofi")
    await cache_vibe(db, "late night", vibe)

    body = (
        await client.get("/api/recommendations", params={"limit": 12, "vibe": "late night", "alpha": 0.5})
    ).json()
    assert body["basis"] == "taste+vibe" and len(body["tastes"]) == 2
    centroids = await _centroids(db)
    for rec in body["recommendations"]:
        query = unit(0.5 * centroids[rec["taste"]["index"]] + 0.5 * vibe)
        assert rec["score"] == pytest.approx(float(vectors[rec["track_id"]] @ query), abs=1e-4)
    # Each blend's best tracks come first for it: nothing better was left out.
    for i, centroid in enumerate(centroids):
        query = unit(0.5 * centroid + 0.5 * vibe)
        mine = [r["track_id"] for r in body["recommendations"] if r["taste"]["index"] == i]
        taken = set(ids(body)) - set(mine)
        best = [t for t in sorted(vectors, key=lambda t: -float(vectors[t] @ query)) if t not in taken]
        assert mine == best[: len(mine)]
    # Alpha 0 is the vibe alone, without tastes.
    pure = (
        await client.get("/api/recommendations", params={"limit": 5, "vibe": "late night", "alpha": 0})
    ).json()
    assert pure["basis"] == "vibe" and pure["tastes"] == []
    assert all(r["taste"] is None for r in pure["recommendations"])


async def test_no_artist_takes_more_than_two_of_ten_places(client: httpx.AsyncClient, db: Factory) -> None:
    space = GenreSpace(seed=17)
    for tid in await _genre_tracks(db, space, "jazz", 8, prefix="Heard"):
        await listen(db, tid)
    # The eight nearest candidates are by one artist.
    centre = space.genre("jazz")
    crowd = [
        await add_track(db, f"Crowd {i}", unit(centre + 0.05 * space.track("jazz")), artist="Crowd")
        for i in range(8)
    ]
    others = await _genre_tracks(db, space, "jazz", 20, prefix="Solo")
    body = (await client.get("/api/recommendations", params={"limit": 20})).json()
    got = ids(body)
    assert len(got) == 20
    artists = [r["artist"] for r in body["recommendations"]]
    for start in range(len(artists)):
        assert artists[start : start + 10].count("Crowd") <= 2, artists
    assert got[0] in crowd and sum(t in crowd for t in got) == 4 and set(got) - set(crowd) <= set(others)
    # The crowd's tracks that made it are its best, in order.
    scores = {r["track_id"]: r["score"] for r in body["recommendations"]}
    kept = [t for t in got if t in crowd]
    assert [scores[t] for t in kept] == sorted(scores[t] for t in kept)[::-1]


async def test_labels_use_tags_when_the_library_has_them(client: httpx.AsyncClient, db: Factory) -> None:
    space = GenreSpace(seed=19)
    tracks = {
        g: await _genre_tracks(db, space, g, 8, prefix=g.title(), artists=2)
        for g in ("ambient", "heavy metal")
    }
    for found in tracks.values():
        for tid in found:
            await listen(db, tid)
    for genre, found in tracks.items():
        for tid in found:
            # As the tags stage stores them (its normalisation drops "seen live").
            await tag(db, tid, {genre: 100, "seen live": 5, "drone" if genre == "ambient" else "thrash": 40})
    built = (await client.post("/api/admin/build-taste-profile")).json()
    assert sorted(t["label"] for t in built["tastes"]) == ["ambient · drone", "heavy metal · thrash"]
    shown = (await client.get("/api/profiles/default")).json()["tastes"]
    assert sorted(t["label"] for t in shown) == ["ambient · drone", "heavy metal · thrash"]
    assert all(len(t["top_artists"]) == 2 for t in shown)


async def test_profiles_list_and_stale_tastes(client: httpx.AsyncClient, db: Factory) -> None:
    space = GenreSpace(seed=23)
    assert (await client.post("/api/profiles", json={"name": "eve"})).status_code == 201
    profiles = (await client.get("/api/profiles")).json()["profiles"]
    assert all(p["tastes"] == [] for p in profiles)
    for tid in await _genre_tracks(db, space, "jazz", 6, prefix="Jazz", artists=2):
        await listen(db, tid, profile="eve")
    await _genre_tracks(db, space, "jazz", 5, prefix="Cand")
    assert (await client.get("/api/recommendations", params={"profile": "eve"})).status_code == 200
    eve = (await client.get("/api/profiles/eve")).json()
    assert [t["tracks"] for t in eve["tastes"]] == [6] and eve["taste_stale"] is False
    assert sorted(eve["tastes"][0]["top_artists"]) == ["Jazz Artist 0", "Jazz Artist 1"]
    # A profile built before tastes existed (a taste vector, no tastes) counts as stale and is rebuilt.
    async with db() as s, s.begin():
        await s.execute(text("DELETE FROM profile_tastes"))
    assert (await client.get("/api/profiles/eve")).json()["taste_stale"] is True
    await client.get("/api/recommendations", params={"profile": "eve"})
    assert len((await client.get("/api/profiles/eve")).json()["tastes"]) == 1
    # Tastes built before they had a cohesion (migration 0011) are stale too, and rebuilt with one.
    async with db() as s, s.begin():
        await s.execute(text("UPDATE profile_tastes SET cohesion = NULL"))
    assert (await client.get("/api/profiles/eve")).json()["taste_stale"] is True
    await client.get("/api/recommendations", params={"profile": "eve"})
    assert (await client.get("/api/profiles/eve")).json()["taste_stale"] is False
    async with db() as s:
        cohesion = (await s.execute(text("SELECT cohesion FROM profile_tastes"))).scalar_one()
    assert 0.5 < cohesion < 1.0
    # Listens arriving make the tastes stale; the next recommendation rebuilds them.
    more = await _genre_tracks(db, space, "metal", 6, prefix="Metal", artists=3)
    for tid in more:
        await listen(db, tid, profile="eve", times=2)
    assert (await client.get("/api/profiles/eve")).json()["taste_stale"] is True
    body = (await client.get("/api/recommendations", params={"profile": "eve"})).json()
    assert len(body["tastes"]) == 2
    shown = (await client.get("/api/profiles/eve")).json()
    assert shown["taste_stale"] is False and [t["tracks"] for t in shown["tastes"]] == [6, 6]


async def test_skipped_listens_feed_no_taste(client: httpx.AsyncClient, db: Factory) -> None:
    space = GenreSpace(seed=29)
    jazz = await _genre_tracks(db, space, "jazz", 8, prefix="Jazz")
    rock = await _genre_tracks(db, space, "rock", 8, prefix="Rock")
    for tid in jazz:
        await listen(db, tid)
    for tid in rock:
        await listen(db, tid, times=3, skipped=True)
    built = (await client.post("/api/admin/build-taste-profile")).json()
    assert built["tracks_used"] == 8 and len(built["tastes"]) == 1
    vec, _, _ = await taste_of(db)
    assert vec == pytest.approx(unit(np.stack(list(jazz.values())).sum(axis=0)), abs=1e-4)


async def test_a_listener_whose_rock_is_all_skipped_gets_no_rock(
    client: httpx.AsyncClient, db: Factory
) -> None:
    """Through the webhook: rock cut short by the next track on the speaker counts for nothing."""
    space = GenreSpace(seed=31)
    jazz = await _genre_tracks(db, space, "jazz", 8, prefix="Jazz")
    rock = await _genre_tracks(db, space, "rock", 8, prefix="Rock")
    names = {tid: (f"Jazz {i}", f"Jazz Artist {i}") for i, tid in enumerate(jazz)}
    names.update({tid: (f"Rock {i}", f"Rock Artist {i}") for i, tid in enumerate(rock)})
    candidates = {g: await _genre_tracks(db, space, g, 15, prefix=f"New {g}") for g in ("jazz", "rock")}
    genre_of = _genre_of(candidates)
    for name in ("alice", "bob"):
        assert (await client.post("/api/profiles", json={"name": name})).status_code == 201

    async def play(profile: str, speaker: str, tid: int | None, at: datetime) -> None:
        title, artist = names[tid] if tid is not None else ("Outro", "Nobody")
        body = {"title": title, "artist": artist, "profile": profile, "speaker_entity": speaker}
        r = await client.post("/api/history/webhook", json={**body, "played_at": at.isoformat()})
        assert r.status_code == 201, r.text

    start = datetime(2026, 5, 1, 20, 0, tzinfo=UTC)
    for profile, speaker, gap in (
        ("alice", "media_player.study_2", 8),
        ("bob", "media_player.kitchen_2", 200),
    ):
        at = start
        for jazz_id, rock_id in zip(jazz, rock, strict=True):
            await play(profile, speaker, jazz_id, at)  # played through: the next starts 5 minutes later
            at += timedelta(minutes=5)
            await play(profile, speaker, rock_id, at)  # alice skips after 8 s, bob listens on
            at += timedelta(seconds=gap)
        await play(profile, speaker, None, at)  # ends the last rock track like the others

    recent = (await client.get("/api/history/recent", params={"profile": "alice", "limit": 50})).json()[
        "events"
    ]
    skipped = {e["title"] for e in recent if e["skipped"]}
    assert skipped == {names[t][0] for t in rock}
    assert not any(
        e["skipped"]
        for e in (await client.get("/api/history/recent", params={"profile": "bob"})).json()["events"]
    )

    alice = (await client.get("/api/recommendations", params={"profile": "alice", "limit": 10})).json()
    assert [genre_of[t] for t in ids(alice)] == ["jazz"] * 10
    bob = (await client.get("/api/recommendations", params={"profile": "bob", "limit": 10})).json()
    assert Counter(genre_of[t] for t in ids(bob)) == {"jazz": 5, "rock": 5}
    assert len((await client.get("/api/profiles/alice")).json()["tastes"]) == 1


async def test_nothing_embedded_means_no_tastes(client: httpx.AsyncClient, db: Factory) -> None:
    r = await client.post("/api/admin/build-taste-profile")
    assert r.status_code == 409
    assert (await client.get("/api/profiles/default")).json()["tastes"] == []
