"""The known side of playlists: soft dislikes stay out, favourites rotate, artists spread (over HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from tests.playlists.support import E0, build_world, track_ids
from tests.recommendations.support import Factory, add_track, listen

GEN = "/api/playlists/generate"
STUDY = "media_player.study_speaker_2"


def known_of(body: dict) -> list[int]:
    return [t["track_id"] for t in body["tracks"] if t["kind"] == "known"]


async def test_a_track_skipped_twice_leaves_the_known_side_until_played_through_or_liked(
    client: httpx.AsyncClient, db: Factory
) -> None:
    w = await build_world(db, known=5, new=20)
    target = w.known[0]  # the most played favourite
    artist, title = w.names[target]
    async with db() as s, s.begin():  # the favourites were played yesterday
        await s.execute(text("UPDATE listen_events SET played_at = played_at - interval '1 day'"))
    t0 = datetime.now(UTC) - timedelta(hours=1)  # today's plays, all before the thumbs up below

    async def play(t: str, a: str, seconds: float) -> None:
        body = {
            "title": t,
            "artist": a,
            "speaker_entity": STUDY,
            "played_at": (t0 + timedelta(seconds=seconds)).isoformat(),
        }
        assert (await client.post("/api/history/webhook", json=body)).status_code == 201

    async def known_side() -> list[int]:
        return known_of((await client.post(GEN, json={"total_tracks": 10, "known_pct": 50})).json())

    assert target in await known_side()
    await play(title, artist, 0)
    await play("Interlude", "Someone", 5)  # skip 1
    assert target in await known_side()  # once is not a dislike
    await play(title, artist, 600)
    await play("Interlude 2", "Someone", 606)  # skip 2: a soft dislike now
    assert target not in await known_side()
    assert target not in await known_side()  # whatever the rotation
    recent = (await client.get("/api/history/recent")).json()["events"]
    assert [e["skipped"] for e in recent if e["track_id"] == target][:2] == [True, True]

    # Played through once: a favourite again.
    await play(title, artist, 1200)
    await play("Interlude 3", "Someone", 1500)
    assert target in await known_side()
    # Two more skips: out again; a thumbs up brings it back.
    await play(title, artist, 2000)
    await play("Interlude 4", "Someone", 2003)
    await play(title, artist, 2100)
    await play("Interlude 5", "Someone", 2104)
    assert target not in await known_side()
    assert (await client.post("/api/feedback", json={"track_id": target, "rating": "up"})).status_code == 201
    assert target in await known_side()


async def test_known_favourites_rotate_between_requests(client: httpx.AsyncClient, db: Factory) -> None:
    w = await build_world(db, known=10, new=30)
    ask = {"total_tracks": 12, "known_pct": 50}  # 6 known places, 10 favourites
    first = known_of((await client.post(GEN, json=ask)).json())
    second = known_of((await client.post(GEN, json=ask)).json())
    third = known_of((await client.post(GEN, json=ask)).json())
    assert first == w.known[:6]
    assert set(second) != set(first) and set(w.known[6:]) <= set(second)
    assert set(third) != set(second)
    # Each playlist plays the favourites the last one left out first, the best of the rest after.
    assert second == [*w.known[6:], *w.known[:2]]
    # With no more favourites than places every favourite plays every time.
    assert (await client.post("/api/profiles", json={"name": "solo"})).status_code == 201
    for tid in w.known[:3]:
        await listen(db, tid, profile="solo")
    for _ in range(2):
        body = (await client.post(GEN, json={"total_tracks": 12, "known_pct": 100, "profile": "solo"})).json()
        assert sorted(known_of(body)) == sorted(w.known[:3])


async def test_playlists_spread_one_artist_out(client: httpx.AsyncClient, db: Factory) -> None:
    heard = await add_track(db, "Heard", E0, artist="Someone")
    await listen(db, heard)
    w = await build_world(db, known=0, new=30)
    # Ten of the best discoveries are by one band.
    async with db() as s, s.begin():
        await s.execute(
            text("UPDATE tracks SET artist = 'Band', norm_artist = 'band' WHERE id = ANY(:ids)"),
            {"ids": w.new[:10]},
        )
    body = (await client.post(GEN, json={"total_tracks": 20, "known_pct": 0})).json()
    artists = [t["artist"] for t in body["tracks"]]
    assert len(artists) == 20
    assert all(artists[i] != artists[i + 1] for i in range(19)), artists
    assert all(artists[i : i + 10].count("Band") <= 2 for i in range(20)), artists
    assert track_ids(body)[0] == w.new[0]
