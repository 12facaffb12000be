"""Playback through the Home Assistant stand-in: the seed's curl examples verbatim, and every failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.fakes import FakeHomeAssistant
from tests.playlists.support import (
    E0,
    HA_TOKEN,
    LIVING,
    STUDY,
    build_world,
    closed_port_url,
    saved_playlists,
    track_ids,
)
from tests.recommendations.support import Factory, cache_vibe

GEN = "/api/playlists/generate"
JSON = {"Content-Type": "application/json"}

# The seed's two playlist examples, byte for byte after `-d`.
SEED_PLAY = """{
"total_tracks": 20,
"known_pct": 30,
"speaker_entity": "media_player.living_room_speaker_2",
"auto_play": true
}"""
SEED_VIBE = """{
"total_tracks": 15,
"vibe": "chill ambient lo-fi",
"speaker_entity": "media_player.living_room_speaker_2",
"auto_play": true
}"""


def play_calls(ha: FakeHomeAssistant) -> list[Any]:
    return [c for c in ha.service_calls if (c.domain, c.service) == ("music_assistant", "play_media")]


def expected_payloads(body: dict[str, Any], entity: str) -> list[dict[str, Any]]:
    return [
        {
            "entity_id": entity,
            "media_id": t["title"],
            "artist": t["artist"],
            "media_type": "track",
            "enqueue": "replace" if i == 0 else "add",
        }
        for i, t in enumerate(body["tracks"])
    ]


async def _http(serve: Callable[..., str], **overrides: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=serve(**overrides), timeout=60)


async def test_seed_generate_and_play_verbatim(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    await build_world(db)
    ha.set_playing(LIVING, title="Old Song", artist="Old Artist")
    ha.players[LIVING].queue.append({"media_title": "Old Queued", "media_artist": "Old Artist"})
    async with await _http(serve, ha_url=ha.url, ha_token=HA_TOKEN) as http:
        r = await http.post(GEN, content=SEED_PLAY, headers=JSON)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["known_count"] == 6 and body["new_count"] == 14 and len(body["tracks"]) == 20
        assert body["playback"] == {
            "requested": True,
            "speaker_entity": LIVING,
            "status": "played",
            "queued": 20,
            "failed": [],
            "error": None,
            "warnings": [],
        }
        # The speaker was checked first, then every track went out in order.
        assert (ha.requests[0].method, ha.requests[0].path) == ("GET", f"/api/states/{LIVING}")
        assert all(req.headers["authorization"] == f"Bearer {HA_TOKEN}" for req in ha.requests)
        calls = play_calls(ha)
        assert [c.data for c in calls] == expected_payloads(body, LIVING)
        assert all(c.status == 200 for c in calls)
        assert [c.at for c in calls] == sorted(c.at for c in calls)
        # The old queue is gone; the playlist plays in order.
        player = ha.players[LIVING]
        assert player.state == "playing" and player.now_playing is not None
        assert player.now_playing["media_title"] == body["tracks"][0]["title"]
        assert [q["media_title"] for q in ha.queue(LIVING)] == [t["title"] for t in body["tracks"][1:]]
        # Saved with its playback outcome.
        saved = (await http.get(f"/api/playlists/{body['playlist_id']}")).json()
        assert saved == body
        listing = (await http.get("/api/playlists")).json()["playlists"]
        assert listing[0]["playback_status"] == "played" and listing[0]["speaker_entity"] == LIVING
        assert HA_TOKEN not in r.text


async def test_seed_vibe_playlist_verbatim(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    await build_world(db)
    # What the worker left in the vibe cache for this text (the key is the normalised text).
    await cache_vibe(db, "chill ambient lo-fi", E0)
    async with await _http(serve, ha_url=ha.url, ha_token=HA_TOKEN) as http:
        r = await http.post(GEN, content=SEED_VIBE, headers=JSON)
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["vibe"] == "chill ambient lo-fi" and body["alpha"] == 0.5
    assert body["known_count"] == 5 and body["new_count"] == 10 and len(body["tracks"]) == 15
    assert body["playback"]["status"] == "played" and body["playback"]["queued"] == 15
    assert [c.data for c in play_calls(ha)] == expected_payloads(body, LIVING)


async def test_unknown_speaker_is_422_and_nothing_saved(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    await build_world(db, known=3, new=5)
    async with await _http(serve, ha_url=ha.url, ha_token=HA_TOKEN) as http:
        r = await http.post(
            GEN, json={"total_tracks": 5, "speaker_entity": "media_player.nowhere_2", "auto_play": True}
        )
        assert r.status_code == 422
        assert "Unknown speaker" in r.json()["detail"] and "media_player.nowhere_2" in r.json()["detail"]
        # auto_play without a speaker: 422 before Home Assistant is asked anything.
        r = await http.post(GEN, json={"total_tracks": 5, "auto_play": True})
        assert r.status_code == 422
        assert (await http.get("/api/playlists")).json()["playlists"] == []
    assert await saved_playlists(db) == 0
    assert ha.service_calls == []
    assert [r.path for r in ha.requests] == ["/api/states/media_player.nowhere_2"]


async def test_speaker_without_auto_play_is_not_contacted(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    await build_world(db, known=3, new=5)
    async with await _http(serve, ha_url=ha.url, ha_token=HA_TOKEN) as http:
        body = (await http.post(GEN, json={"total_tracks": 4, "speaker_entity": STUDY})).json()
    assert body["playback"]["status"] == "not_requested" and body["playback"]["speaker_entity"] == STUDY
    assert body["playback"]["requested"] is False
    assert ha.requests == []


async def test_bad_token_saves_and_reports(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    await build_world(db, known=3, new=5)
    async with await _http(serve, ha_url=ha.url, ha_token="wrong-token") as http:
        r = await http.post(GEN, json={"total_tracks": 6, "speaker_entity": STUDY, "auto_play": True})
        assert r.status_code == 200, r.text
        body = r.json()
        playback = body["playback"]
        assert playback["status"] == "failed" and playback["queued"] == 0 and playback["requested"] is True
        assert "rejected the token" in playback["error"] and "HAUNTFM_HA_TOKEN" in playback["error"]
        assert len(body["tracks"]) == 6
        assert (await http.get(f"/api/playlists/{body['playlist_id']}")).json() == body
        assert "wrong-token" not in r.text
    assert ha.service_calls == []
    assert await saved_playlists(db) == 1


async def test_home_assistant_down_saves_and_reports(serve: Callable[..., str], db: Factory) -> None:
    await build_world(db, known=3, new=5)
    down = closed_port_url()
    async with await _http(serve, ha_url=down, ha_token=HA_TOKEN) as http:
        r = await http.post(GEN, json={"total_tracks": 6, "speaker_entity": STUDY, "auto_play": True})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["playback"]["status"] == "failed" and body["playback"]["queued"] == 0
        assert "could not be reached" in body["playback"]["error"] and down in body["playback"]["error"]
        assert HA_TOKEN not in r.text
        saved = (await http.get(f"/api/playlists/{body['playlist_id']}")).json()
        assert saved["playback"]["status"] == "failed" and len(saved["tracks"]) == 6


async def test_home_assistant_not_configured(serve: Callable[..., str], db: Factory) -> None:
    await build_world(db, known=3, new=5)
    async with await _http(serve) as http:
        body = (
            await http.post(GEN, json={"total_tracks": 4, "speaker_entity": STUDY, "auto_play": True})
        ).json()
    assert body["playback"]["status"] == "failed"
    assert "HAUNTFM_HA_URL" in body["playback"]["error"] and "HAUNTFM_HA_TOKEN" in body["playback"]["error"]
    assert await saved_playlists(db) == 1


async def test_unresolvable_first_track_hands_replace_to_the_next(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    w = await build_world(db)
    # N0 opens the playlist, N2 is further in; Music Assistant can find neither.
    for tid in (w.new[0], w.new[2]):
        artist, title = w.names[tid]
        ha.unresolvable.add(f"{artist} - {title}".casefold())
    ha.set_playing(STUDY, title="Old Song", artist="Old Artist")
    ha.players[STUDY].queue.append({"media_title": "Old Queued", "media_artist": "Old Artist"})
    async with await _http(serve, ha_url=ha.url, ha_token=HA_TOKEN) as http:
        body = (
            await http.post(GEN, json={"total_tracks": 10, "speaker_entity": STUDY, "auto_play": True})
        ).json()
        saved = (await http.get(f"/api/playlists/{body['playlist_id']}")).json()
    ids = track_ids(body)
    first, third_new = ids.index(w.new[0]), ids.index(w.new[2])
    assert first == 0
    playback = body["playback"]
    assert playback["status"] == "partial" and playback["queued"] == 8
    assert [f["track_id"] for f in playback["failed"]] == [w.new[0], w.new[2]]
    assert [f["position"] for f in playback["failed"]] == [1, third_new + 1]
    assert playback["failed"][0]["title"] == "N0" and playback["failed"][0]["artist"] == "New Artist 0"
    assert "could not find" in playback["failed"][0]["reason"]
    assert "2 of 10 tracks could not be found" in playback["error"]
    calls = play_calls(ha)
    assert [c.data["media_id"] for c in calls] == [t["title"] for t in body["tracks"]]
    assert [c.status for c in calls] == [500 if i in (0, third_new) else 200 for i in range(10)]
    # The second track replaced the old queue, the rest were added after it.
    assert [c.data["enqueue"] for c in calls] == ["replace", "replace"] + ["add"] * 8
    assert ha.players[STUDY].now_playing is not None
    assert ha.players[STUDY].now_playing["media_title"] == body["tracks"][1]["title"]
    assert len(ha.queue(STUDY)) == 7 and "Old Queued" not in [q["media_title"] for q in ha.queue(STUDY)]
    assert saved["playback"] == playback


async def test_nothing_resolvable_is_failed(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    w = await build_world(db, known=2, new=2)
    for tid in w.known + w.new:
        artist, title = w.names[tid]
        ha.unresolvable.add(f"{artist} - {title}".casefold())
    async with await _http(serve, ha_url=ha.url, ha_token=HA_TOKEN) as http:
        body = (
            await http.post(GEN, json={"total_tracks": 4, "speaker_entity": STUDY, "auto_play": True})
        ).json()
    assert body["playback"]["status"] == "failed" and len(body["playback"]["failed"]) == 4
    assert "could not find any of the 4 tracks" in body["playback"]["error"]
    assert [c.data["enqueue"] for c in play_calls(ha)] == ["replace"] * 4


class RevokingHomeAssistant(FakeHomeAssistant):
    """Revokes the token after `after` service calls (someone deleted it mid-playlist)."""

    after = 3

    def _run_service(self, domain: str, service: str, raw: bytes, call: Any) -> Any:
        response = super()._run_service(domain, service, raw, call)
        if len(self.service_calls) >= self.after:
            self.token = "revoked"
        return response


async def test_token_revoked_midway_stops_with_partial(serve: Callable[..., str], db: Factory) -> None:
    await build_world(db, known=3, new=10)
    with RevokingHomeAssistant(token=HA_TOKEN) as ha:
        ha.add_player(STUDY, friendly_name="Study speaker")
        async with await _http(serve, ha_url=ha.url, ha_token=HA_TOKEN) as http:
            body = (
                await http.post(GEN, json={"total_tracks": 8, "speaker_entity": STUDY, "auto_play": True})
            ).json()
        assert [r.status for r in ha.requests] == [200, 200, 200, 200, 401]
    playback = body["playback"]
    assert playback["status"] == "partial" and playback["queued"] == 3 and playback["failed"] == []
    assert "rejected the token" in playback["error"] and "Stopped at track 4 of 8" in playback["error"]
    assert "3 of 8 tracks are queued" in playback["error"]


async def test_non_music_assistant_speaker_warns(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    await build_world(db, known=2, new=4)
    cast = "media_player.living_room_speaker"
    ha.other_states[cast] = {
        "entity_id": cast,
        "state": "idle",
        "attributes": {"friendly_name": "Living Room speaker", "device_class": "speaker"},
    }
    async with await _http(serve, ha_url=ha.url, ha_token=HA_TOKEN) as http:
        body = (
            await http.post(GEN, json={"total_tracks": 3, "speaker_entity": cast, "auto_play": True})
        ).json()
    assert body["playback"]["requested"] is True and len(play_calls(ha)) == 3
    assert any("does not look like a Music Assistant player" in w for w in body["warnings"])
    assert body["playback"]["warnings"] == body["warnings"]


async def test_malformed_home_assistant_url_is_a_failed_playback(
    serve: Callable[..., str], db: Factory
) -> None:
    await build_world(db, known=2, new=3)
    async with await _http(serve, ha_url="http://[::1", ha_token=HA_TOKEN) as http:
        r = await http.post(GEN, json={"total_tracks": 3, "speaker_entity": STUDY, "auto_play": True})
        assert r.status_code == 200, r.text
        assert "HAUNTFM_HA_URL" in r.json()["playback"]["error"]
        spec = (await http.get("/openapi.json")).json()
    assert {"/api/playlists/generate", "/api/playlists", "/api/playlists/{playlist_id}"} <= set(spec["paths"])


async def test_play_can_add_after_the_queue_and_be_stopped_between_tracks(ha: FakeHomeAssistant) -> None:
    """What a radio needs from `play`: add without replacing, and hear each outcome as it comes."""
    from haunt_fm.clients.homeassistant import HomeAssistantClient
    from haunt_fm.pipeline.playlists.playback import play
    from haunt_fm.pipeline.playlists.schemas import PlaybackFailure, PlaylistTrackOut

    tracks = [
        PlaylistTrackOut(position=p, track_id=p, title=f"T{p}", artist="A", kind="new", score=None)
        for p in (1, 2, 3, 4)
    ]
    ha.unresolvable.add("a - t2")
    seen: list[tuple[int, bool]] = []

    async def on_result(track: PlaylistTrackOut, failure: PlaybackFailure | None) -> bool:
        seen.append((track.position, failure is None))
        return track.position < 3  # the radio was stopped while track 3 was being queued

    client = HomeAssistantClient(ha.url, HA_TOKEN)
    try:
        out = await play(client, entity_id=LIVING, tracks=tracks, replace_first=False, on_result=on_result)
    finally:
        await client.aclose()
    assert seen == [(1, True), (2, False), (3, True)]
    assert [c.data["enqueue"] for c in ha.service_calls] == ["add", "add", "add"]
    assert out.queued == 2 and [f.position for f in out.failed] == [2]
