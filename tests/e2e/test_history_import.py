"""Day one, in one run of `haunt-fm serve`: a new household member imports their Last.fm history
and their ListenBrainz export (twice), and within the same session has a taste, recommendations
and a first discovery run, without a single duplicated listen.

Stand-ins for Last.fm, iTunes and Home Assistant speak their real wire formats; the model is a
tiny random CLAP checkpoint loaded through the real code path (see test_full_pipeline.py).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_full_pipeline import _wait, service
from tests.fakes.homeassistant import FakeHomeAssistant
from tests.fakes.itunes import FakeItunes
from tests.fakes.lastfm import FakeLastfm
from tests.support.audio import make_aac_m4a
from tests.support.waiting import eventually

__all__ = ["service"]

SIMILAR = 6
NEWEST = 1_767_225_600  # 2026-01-01


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A Last.fm user and a ListenBrainz export over one catalogue that the iTunes store carries."""
    audio = [
        make_aac_m4a(tmp_path / f"a{i}.m4a", seconds=11, freq=180 + 70 * i).read_bytes() for i in range(6)
    ]
    with (
        FakeLastfm(api_key="lfm-key", similar_count=SIMILAR) as lastfm,
        FakeItunes() as itunes,
        FakeHomeAssistant(token="ha-token") as ha,
    ):
        songs = lastfm.pool[:8]
        # Last.fm: 40 scrobbles of seven songs, a quarter of an hour apart, some played more.
        pattern = [0, 0, 0, 1, 1, 2, 3, 4, 5, 7]
        scrobbles = [(NEWEST - 900 * i, *songs[pattern[i % 10]]) for i in range(40)]
        lastfm.add_user("newbie-lfm", scrobbles, now_playing=songs[0])
        # ListenBrainz: the last 10 of the same scrobbles (sent to both services, 20 s apart
        # in their clocks) and 10 listens of its own (the eighth song only it knows).
        export = [
            {"listened_at": uts + 20, "track_metadata": {"artist_name": artist, "track_name": title}}
            for uts, artist, title in scrobbles[:10]
        ]
        export += [
            {
                "listened_at": NEWEST - 86_400 * (i + 1),
                "track_metadata": {"artist_name": songs[6 + i % 2][0], "track_name": songs[6 + i % 2][1]},
            }
            for i in range(10)
        ]
        catalogue = list(songs)
        for artist, title in songs:
            catalogue += [
                (s["artist"]["name"], s["name"]) for s in lastfm.similar_for(artist, title, SIMILAR)
            ]
        for n, (artist, title) in enumerate(dict.fromkeys(catalogue)):
            itunes.add_track(artist, title, preview=audio[n % len(audio)])
        yield {"lastfm": lastfm, "itunes": itunes, "ha": ha, "export": export, "songs": songs}


def _import(c: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    import_id = response.json()["import_id"]

    def ended() -> dict[str, Any] | None:
        doc: dict[str, Any] = c.get(f"/api/admin/imports/{import_id}").json()
        return doc if doc["status"] != "running" else None

    doc = eventually(ended, what=f"import {import_id} to end")
    assert doc["status"] == "done", doc
    return doc


@pytest.mark.slow
def test_day_one_import_then_taste_recommendations_and_discovery(service: str, world: dict[str, Any]) -> None:
    export = "\n".join(json.dumps(e) for e in world["export"]).encode()
    with httpx.Client(base_url=service, timeout=30) as c:
        assert c.post("/api/profiles", json={"name": "newbie", "display_name": "New"}).status_code == 201
        lastfm_body = {"user": "newbie-lfm", "profile": "newbie"}

        first = _import(c, c.post("/api/admin/import/lastfm", json=lastfm_body))
        assert (first["imported"], first["duplicates"]) == (40, 0)
        files = {"file": ("listens.jsonl", export, "application/x-ndjson")}
        lb = _import(c, c.post("/api/admin/import/listenbrainz", params={"profile": "newbie"}, files=files))
        # The ten listens Last.fm already had are the same listens (same song within 60 s).
        assert (lb["imported"], lb["duplicates"], lb["skipped"]) == (10, 10, 0)

        # Importing both again adds nothing.
        again = _import(c, c.post("/api/admin/import/lastfm", json=lastfm_body))
        assert (again["imported"], again["duplicates"]) == (0, 40)
        lb_again = _import(
            c, c.post("/api/admin/import/listenbrainz", params={"profile": "newbie"}, files=files)
        )
        assert (lb_again["imported"], lb_again["duplicates"]) == (0, 20)
        status = c.get("/api/status").json()
        assert status["pipeline"]["listens"] == 50 and status["pipeline"]["listened_tracks"] == 8
        newbie = next(p for p in status["profiles"] if p["name"] == "newbie")
        assert newbie["listens"] == 50
        events = c.get("/api/history/recent", params={"profile": "newbie", "limit": 500}).json()["events"]
        assert len(events) == 50
        seen: dict[int, list[datetime]] = {}
        for e in events:
            seen.setdefault(e["track_id"], []).append(datetime.fromisoformat(e["played_at"]))
        for times in seen.values():
            times.sort()
            assert all((b - a).total_seconds() >= 60 for a, b in itertools.pairwise(times)), times
        assert {e["source"] for e in events} == {"lastfm", "listenbrainz"}

        # A first discovery run, bounded: the three most played songs are its seeds.
        found = c.post("/api/admin/discover", json={"limit": SIMILAR, "max_seeds": 3})
        assert found.status_code == 200, found.text
        assert found.json()["seeds"] == 3 and found.json()["seeds_remaining"] == 5
        candidates = found.json()["candidates_new"]
        assert candidates > 0

        # Previews and embeddings catch up in the background: listened tracks and candidates.
        total = 8 + candidates
        _wait(c, "previews and embeddings", lambda s: s["pipeline"]["embedding"]["done"] == total)
        built = c.post("/api/admin/build-taste-profile", params={"profile": "newbie"})
        assert built.status_code == 200 and built.json()["tracks_used"] == 8, built.text

        recs = c.get("/api/recommendations", params={"profile": "newbie", "limit": 10}).json()
        ids = [r["track_id"] for r in recs["recommendations"]]
        assert len(ids) == min(10, candidates)
        assert not {e["track_id"] for e in events} & set(ids)  # never a song they know

        imports = c.get("/api/admin/imports").json()["imports"]
        assert [i["status"] for i in imports] == ["done"] * 4
        assert c.get("/api/status").json()["imports"]["running"] == []
