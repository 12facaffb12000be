"""The whole product as a household uses it, in one run of `haunt-fm serve`:

Home Assistant logs listens -> Last.fm discovery -> iTunes previews -> CLAP embeddings
-> taste profile -> recommendations (+ vibe, feedback) -> a playlist played through Music
Assistant. Every outside service is a loopback stand-in speaking its real wire format; the
model is a tiny random CLAP checkpoint loaded through the real code path.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.fakes.homeassistant import FakeHomeAssistant
from tests.fakes.itunes import FakeItunes
from tests.fakes.lastfm import FakeLastfm
from tests.support.audio import make_aac_m4a
from tests.support.serve_process import serve_process
from tests.support.waiting import eventually

SEEDS = [("Radiohead", "Paranoid Android"), ("Portishead", "Roads"), ("Massive Attack", "Teardrop")]
SIMILAR = 6  # candidates per seed


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, object]]:
    """Stand-ins with a linked catalogue: every track Last.fm suggests is in the iTunes store."""
    audio = [
        make_aac_m4a(tmp_path / f"a{i}.m4a", seconds=11, freq=180 + 70 * i).read_bytes() for i in range(6)
    ]
    with (
        FakeLastfm(api_key="lfm-key", similar_count=SIMILAR) as lastfm,
        FakeItunes() as itunes,
        FakeHomeAssistant(token="ha-token") as ha,
    ):
        songs = list(SEEDS)
        for artist, title in SEEDS:
            songs += [(s["artist"]["name"], s["name"]) for s in lastfm.similar_for(artist, title, SIMILAR)]
        unique = list(dict.fromkeys(songs))  # seeds can share a similar track
        for n, (artist, title) in enumerate(unique):
            itunes.add_track(artist, title, preview=audio[n % len(audio)])
        ha.add_player("media_player.study_speaker_2", friendly_name="Study speaker")
        yield {"lastfm": lastfm, "itunes": itunes, "ha": ha, "candidates": len(unique) - len(SEEDS)}


@pytest.fixture
def service(
    world: dict[str, object], tiny_clap_dir: Path, onnx_model_cache: Path, tmp_path: Path
) -> Iterator[str]:
    lastfm, itunes, ha = world["lastfm"], world["itunes"], world["ha"]
    # Audio through ONNX Runtime int8, from a cache already exported and verified (the
    # export itself is tested in tests/embeddings/test_onnx_runtime.py).
    models = shutil.copytree(onnx_model_cache, tmp_path / "models")
    log = tmp_path / "serve.log"
    with serve_process(
        log,
        data_dir=str(tmp_path / "data"),
        lastfm_api_key="lfm-key",
        lastfm_api_url=lastfm.api_url,  # type: ignore[attr-defined]
        itunes_api_url=itunes.url,  # type: ignore[attr-defined]
        itunes_rate_per_minute="600",
        ha_url=ha.url,  # type: ignore[attr-defined]
        ha_token="ha-token",
        clap_model=str(tiny_clap_dir),
        embedding_worker_enabled="true",
        embedding_interval_seconds="0.2",
        torch_threads="1",
        model_cache_dir=str(models),
        embedding_runtime="onnx-int8",
    ) as url:
        yield url
    for secret in ("lfm-key", "ha-token"):
        assert secret not in log.read_text(), f"{secret} leaked into the log"


def _wait(client: httpx.Client, what: str, done: object, timeout: float = 90) -> dict:
    def reached() -> dict | None:
        status: dict = client.get("/api/status").json()
        return status if done(status) else None  # type: ignore[operator]

    return eventually(reached, what=what, seconds=timeout, every=0.2)


@pytest.mark.slow
def test_listen_to_playlist_on_the_speaker(service: str, world: dict[str, object]) -> None:
    ha = world["ha"]
    with httpx.Client(base_url=service, timeout=30) as c:
        assert c.post("/api/profiles", json={"name": "antialias", "display_name": "Me"}).status_code == 201
        assert (
            c.put("/api/profiles/antialias/speakers", json={"speakers": ["Study speaker"]}).status_code == 200
        )
        for n, (artist, title) in enumerate(SEEDS):
            # Played through, five minutes apart (one right after another would be skips).
            at = datetime.now(UTC) - timedelta(minutes=5 * (len(SEEDS) - n))
            r = c.post(
                "/api/history/webhook",
                json={
                    "title": title,
                    "artist": artist,
                    "speaker_name": "Study speaker",
                    "played_at": at.isoformat(),
                },
            )
            assert r.status_code == 201 and r.json()["profile"] == "antialias"

        found = c.post("/api/admin/discover", json={"limit": 50})
        assert found.status_code == 200, found.text
        assert found.json()["seeds"] == 3
        candidates = world["candidates"]
        assert found.json()["candidates_new"] == candidates

        total = 3 + candidates
        status = _wait(c, "previews and embeddings", lambda s: s["pipeline"]["embedding"]["done"] == total)
        assert status["pipeline"]["preview"]["found"] == total
        assert status["pipeline"]["candidates"] == candidates
        assert status["worker"]["state"] in ("idle", "working")
        assert status["discovery"]["last_run_at"] is not None

        built = c.post("/api/admin/build-taste-profile", params={"profile": "antialias"})
        assert built.status_code == 200 and built.json()["tracks_used"] == 3

        recs = c.get("/api/recommendations", params={"profile": "antialias", "limit": 10}).json()
        ids = [r["track_id"] for r in recs["recommendations"]]
        assert len(ids) == 10
        scores = [r["score"] for r in recs["recommendations"]]
        assert scores == sorted(scores, reverse=True)
        assert all(r["because"] for r in recs["recommendations"])  # each says which listen led to it
        listened = {e["track_id"] for e in c.get("/api/history/recent").json()["events"]}
        assert not listened & set(ids)

        # A vibe is embedded by the in-process model.
        vibed = c.get(
            "/api/recommendations",
            params={"profile": "antialias", "limit": 5, "vibe": "dark trip hop", "alpha": 0.3},
        )
        assert vibed.status_code == 200 and len(vibed.json()["recommendations"]) == 5

        # Thumbs down takes the top pick out at once.
        down = c.post("/api/feedback", json={"track_id": ids[0], "rating": "down", "profile": "antialias"})
        assert down.status_code == 201
        again = c.get("/api/recommendations", params={"profile": "antialias", "limit": 10}).json()
        assert ids[0] not in [r["track_id"] for r in again["recommendations"]]

        played = c.post(
            "/api/playlists/generate",
            json={
                "total_tracks": 8,
                "known_pct": 25,
                "profile": "antialias",
                "speaker_entity": "media_player.study_speaker_2",
                "auto_play": True,
            },
        )
        assert played.status_code == 200, played.text
        body = played.json()
        assert body["known_count"] == 2 and body["new_count"] == 6
        assert ids[0] not in [t["track_id"] for t in body["tracks"]]
        assert body["playback"]["status"] == "played" and body["playback"]["queued"] == 8
    calls = [call for call in ha.service_calls if call.service == "play_media"]  # type: ignore[attr-defined]
    assert len(calls) == 8
    assert calls[0].data["enqueue"] == "replace"
    assert all(call.data["media_type"] == "track" for call in calls)
