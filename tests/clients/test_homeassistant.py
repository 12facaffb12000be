"""HomeAssistantClient against the loopback Home Assistant stand-in."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from haunt_fm.clients._http import RetryPolicy
from haunt_fm.clients.homeassistant import (
    HomeAssistantAuthError,
    HomeAssistantClient,
    HomeAssistantError,
    HomeAssistantServiceError,
    HomeAssistantUnavailable,
)
from tests.fakes import FakeHomeAssistant, Fault

TOKEN = "SECRET-ha-long-lived-token-abcdef"
STUDY = "media_player.study_speaker_2"
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, jitter=0)


async def raw_get(url: str, **kwargs: Any) -> httpx.Response:
    """A plain GET, to look at exactly what the fake puts on the wire."""
    async with httpx.AsyncClient() as http:
        return await http.get(url, **kwargs)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeHomeAssistant]:
    with FakeHomeAssistant(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def ha(server: FakeHomeAssistant) -> FakeHomeAssistant:
    server.reset()
    server.add_player(STUDY, friendly_name="Study speaker")
    return server


@pytest.fixture
async def client(ha: FakeHomeAssistant) -> AsyncIterator[HomeAssistantClient]:
    async with HomeAssistantClient(ha.url, TOKEN, retry=FAST) as c:
        yield c


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


async def test_check_api_sends_the_bearer_token(client: HomeAssistantClient, ha: FakeHomeAssistant) -> None:
    assert await client.check_api() == "API running."
    [request] = ha.requests
    assert request.path == "/api/" and request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_a_wrong_token_is_an_auth_error(ha: FakeHomeAssistant) -> None:
    raw = await raw_get(f"{ha.url}/api/", headers={"Authorization": "Bearer nope"})
    assert raw.status_code == 401 and raw.text == "401: Unauthorized"
    assert raw.headers["content-type"].startswith("text/plain")
    wrong = "SECRET-wrong-token"
    async with HomeAssistantClient(ha.url, wrong, retry=FAST) as client:
        with pytest.raises(HomeAssistantAuthError) as caught:
            await client.check_api()
        with pytest.raises(HomeAssistantAuthError):
            await client.play_media(STUDY, "Creep", artist="Radiohead")
    error = caught.value
    assert str(error) == "Home Assistant rejected the token; check HAUNTFM_HA_TOKEN."
    assert not error.transient and error.status == 401
    assert wrong not in str(error)
    assert len(ha.requests) == 1 + 2  # the raw probe, then one each: auth errors aren't retried
    assert ha.service_calls == []  # nothing ran


async def test_state_of_a_playing_music_assistant_player(
    client: HomeAssistantClient, ha: FakeHomeAssistant
) -> None:
    ha.set_playing(STUDY, title="Paranoid Android", artist="Radiohead", album="OK Computer", duration=383)
    state = await client.get_state(STUDY)
    assert state is not None
    assert state["entity_id"] == STUDY and state["state"] == "playing"
    attributes = state["attributes"]
    assert attributes["app_id"] == "music_assistant" and attributes["friendly_name"] == "Study speaker"
    assert attributes["media_title"] == "Paranoid Android" and attributes["media_artist"] == "Radiohead"
    assert attributes["media_album_name"] == "OK Computer" and attributes["media_duration"] == 383
    assert attributes["media_content_id"].startswith("library://track/")
    assert {"last_changed", "last_updated", "context"} <= set(state)


async def test_idle_radio_and_off_players_drop_attributes(
    client: HomeAssistantClient, ha: FakeHomeAssistant
) -> None:
    idle = await client.get_state(STUDY)
    assert idle is not None and not any(key.startswith("media_") for key in idle["attributes"])
    ha.set_playing(STUDY, title="BBC Radio 6 Music", artist=None)
    radio = await client.get_state(STUDY)
    assert radio is not None and "media_artist" not in radio["attributes"]  # None attributes are absent
    assert radio["attributes"]["media_title"] == "BBC Radio 6 Music"
    ha.add_player("media_player.kitchen", state="off")
    off = await client.get_state("media_player.kitchen")
    assert off is not None and off["state"] == "off"
    assert not any(key.startswith("media_") or key == "volume_level" for key in off["attributes"])


async def test_unknown_entity_is_none(client: HomeAssistantClient, ha: FakeHomeAssistant) -> None:
    raw = await raw_get(
        f"{ha.url}/api/states/media_player.nope", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert raw.status_code == 404 and raw.json() == {"message": "Entity not found."}
    assert await client.get_state("media_player.nope") is None
    assert await client.get_state("media_player.x/../../api") is None  # quoted, so still just "not found"


async def test_list_states_returns_every_entity(client: HomeAssistantClient, ha: FakeHomeAssistant) -> None:
    ha.add_player("media_player.kitchen_2", friendly_name="Kitchen", state="off")
    ha.other_states["sun.sun"] = {"entity_id": "sun.sun", "state": "above_horizon", "attributes": {}}
    states = await client.list_states()
    assert [s["entity_id"] for s in states] == [STUDY, "media_player.kitchen_2", "sun.sun"]
    assert states[0]["attributes"]["friendly_name"] == "Study speaker"
    [request] = ha.requests
    assert request.path == "/api/states" and request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_list_states_of_an_unexpected_shape_is_an_error(
    client: HomeAssistantClient, ha: FakeHomeAssistant
) -> None:
    ha.inject(Fault(200, '{"message": "API running."}', "application/json"))
    with pytest.raises(HomeAssistantError, match="unexpected shape"):
        await client.list_states()


async def test_play_media_sends_music_assistant_data(
    client: HomeAssistantClient, ha: FakeHomeAssistant
) -> None:
    changed = await client.play_media(STUDY, "Paranoid Android", artist="Radiohead", enqueue="replace")
    [call] = ha.service_calls
    assert (call.domain, call.service, call.status) == ("music_assistant", "play_media", 200)
    assert call.data == {
        "entity_id": STUDY,
        "media_id": "Paranoid Android",
        "media_type": "track",
        "artist": "Radiohead",
        "enqueue": "replace",
    }
    assert [s["entity_id"] for s in changed] == [STUDY]
    assert changed[0]["state"] == "playing"
    assert changed[0]["attributes"]["media_title"] == "Paranoid Android"


async def test_play_media_can_enqueue_lists(client: HomeAssistantClient, ha: FakeHomeAssistant) -> None:
    await client.play_media(STUDY, "Radiohead - Creep", enqueue="replace")
    await client.play_media(STUDY, ["Blur - Tender", "Pulp - Common People"], enqueue="add")
    assert [item["media_title"] for item in ha.queue(STUDY)] == ["Tender", "Common People"]
    assert ha.service_calls[1].data["media_id"] == ["Blur - Tender", "Pulp - Common People"]
    state = await client.get_state(STUDY)
    assert state is not None and state["attributes"]["media_artist"] == "Radiohead"


async def test_unresolvable_track_is_a_service_error_and_not_retried(
    client: HomeAssistantClient, ha: FakeHomeAssistant
) -> None:
    ha.unresolvable.add("radiohead - no such song")
    with pytest.raises(HomeAssistantServiceError) as caught:
        await client.play_media(STUDY, "No Such Song", artist="Radiohead")
    assert not caught.value.transient and caught.value.status == 500
    assert "music_assistant.play_media" in str(caught.value)
    assert len(ha.requests) == 1
    # The same with an empty 500 body.
    ha.error_500_body = ""
    with pytest.raises(HomeAssistantServiceError):
        await client.play_media(STUDY, "Radiohead - No Such Song")
    assert len(ha.requests) == 2


async def test_bad_service_data_is_a_400(client: HomeAssistantClient, ha: FakeHomeAssistant) -> None:
    with pytest.raises(HomeAssistantError) as caught:
        await client.call_service("music_assistant", "play_media", {"entity_id": STUDY, "bogus": 1})
    assert caught.value.status == 400 and not caught.value.transient
    assert not isinstance(caught.value, HomeAssistantServiceError | HomeAssistantAuthError)
    assert "400: Bad Request" in str(caught.value)
    with pytest.raises(HomeAssistantError, match="bad request"):
        await client.call_service("no_such", "service", {"entity_id": STUDY})
    assert [c.status for c in ha.service_calls] == [400, 400]


async def test_missing_entity_answers_an_empty_list(
    client: HomeAssistantClient, ha: FakeHomeAssistant
) -> None:
    assert await client.play_media("media_player.gone", "Radiohead - Creep") == []
    assert ha.service_calls[0].status == 200 and ha.queue(STUDY) == []


async def test_invalid_enqueue_and_names_are_refused_locally(
    client: HomeAssistantClient, ha: FakeHomeAssistant
) -> None:
    with pytest.raises(ValueError, match="enqueue"):
        await client.play_media(STUDY, "x", enqueue="shuffle")
    with pytest.raises(HomeAssistantError, match="not a valid service name"):
        await client.call_service("media_player", "../states")
    assert ha.requests == []


async def test_gets_retry_timeouts_and_5xx(ha: FakeHomeAssistant) -> None:
    ha.inject(Fault(200, "{}", "application/json", delay=0.5), Fault(503, "", "text/plain"))
    async with httpx.AsyncClient(timeout=0.15) as http:
        client = HomeAssistantClient(ha.url, TOKEN, http=http, retry=FAST)
        state = await client.get_state(STUDY)
    assert state is not None and state["entity_id"] == STUDY
    assert len(ha.requests) == 3


async def test_service_calls_are_never_retried(ha: FakeHomeAssistant) -> None:
    ha.inject(Fault(200, "[]", "application/json", delay=0.5))
    async with httpx.AsyncClient(timeout=0.15) as http:
        client = HomeAssistantClient(ha.url, TOKEN, http=http, retry=FAST)
        with pytest.raises(HomeAssistantUnavailable) as caught:
            await client.play_media(STUDY, "Radiohead - Creep")
    assert caught.value.transient
    ha.inject(Fault(503, "", "text/plain"))
    async with HomeAssistantClient(ha.url, TOKEN, retry=FAST) as client:
        with pytest.raises(HomeAssistantUnavailable):
            await client.play_media(STUDY, "Radiohead - Creep")
    assert len(ha.requests) == 2


async def test_unreachable_host_names_the_url_not_the_token() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with HomeAssistantClient(url, TOKEN, retry=FAST) as client:
        with pytest.raises(HomeAssistantUnavailable) as caught:
            await client.check_api()
    error = caught.value
    assert url in str(error) and TOKEN not in str(error) and TOKEN not in repr(error)
    assert error.transient and "could not be reached" in str(error)


def test_unconfigured_client_is_refused() -> None:
    with pytest.raises(HomeAssistantAuthError, match="HAUNTFM_HA_TOKEN"):
        HomeAssistantClient("http://127.0.0.1:8123", "")


async def test_credentials_in_the_url_never_appear_in_errors() -> None:
    client = HomeAssistantClient(
        "http://admin:hunter2@127.0.0.1:1", "token-xyz", retry=RetryPolicy(max_attempts=1)
    )
    with pytest.raises(HomeAssistantUnavailable) as info:
        await client.get_state("media_player.study_speaker_2")
    await client.aclose()
    assert "hunter2" not in str(info.value) and "token-xyz" not in str(info.value)
    assert "http://127.0.0.1:1" in str(info.value)


# -- history (GET /api/history/period/<start>) -----------------------------------------------


def _playing(title: str, content_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "friendly_name": "Kitchen stereo",
        "app_id": "music_assistant",
        "media_title": title,
        "media_artist": "Sigur Rós",
        "media_content_id": content_id,
        "media_duration": 273.48,
        **extra,
    }


async def test_posted_states_are_recorded_like_the_recorder(ha: FakeHomeAssistant) -> None:
    """POST /api/states sets a state as Home Assistant does: 201 new, 200 changed, times kept."""
    kitchen = "media_player.kitchen_stereo_2"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=ha.url, headers=headers) as http:
        first = await http.post(
            f"/api/states/{kitchen}", json={"state": "off", "attributes": {"app_id": "x"}}
        )
        assert first.status_code == 201
        playing = await http.post(
            f"/api/states/{kitchen}", json={"state": "playing", "attributes": _playing("Glósóli", "c1")}
        )
        assert playing.status_code == 200
        next_track = await http.post(
            f"/api/states/{kitchen}", json={"state": "playing", "attributes": _playing("Hoppípolla", "c2")}
        )
        body = next_track.json()
        # A track change keeps last_changed (the state stayed "playing") and moves last_updated.
        assert body["last_changed"] == playing.json()["last_changed"]
        assert body["last_updated"] > body["last_changed"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", body["last_updated"])
        bad = await http.post(f"/api/states/{kitchen}", json={"attributes": {}})
        assert bad.status_code == 400 and bad.json() == {"message": "No state specified."}
    assert [s["state"] for s in ha.recorded[kitchen]] == ["off", "playing", "playing"]


async def test_history_reads_track_changes_while_playing(
    client: HomeAssistantClient, ha: FakeHomeAssistant
) -> None:
    kitchen = "media_player.kitchen_stereo_2"
    start = datetime.now(UTC) - timedelta(minutes=1)
    ha.set_state(kitchen, "off", {"friendly_name": "Kitchen stereo"})
    ha.set_state(kitchen, "playing", _playing("Glósóli", "c1"))
    ha.set_state(kitchen, "playing", _playing("Hoppípolla", "c2"))
    ha.set_state(kitchen, "playing", _playing("Hoppípolla", "c2", volume_level=0.4))
    end = datetime.now(UTC) + timedelta(seconds=1)
    (states,) = await client.history([kitchen], start=start, end=end)
    assert [(s["state"], s["attributes"].get("media_title")) for s in states] == [
        ("off", None),
        ("playing", "Glósóli"),
        ("playing", "Hoppípolla"),
        ("playing", "Hoppípolla"),
    ]
    assert all(s["entity_id"] == kitchen for s in states)
    # Home Assistant's default, significant changes only, would hide the track change.
    (significant,) = await client.history([kitchen], start=start, end=end, significant_changes_only=True)
    assert [s["attributes"].get("media_title") for s in significant] == [None, "Glósóli"]
    # The end time travelled as %2B00:00: the stand-in, like Home Assistant, refuses a bare `+`.
    request = next(r for r in ha.requests if r.path.startswith("/api/history/period/"))
    assert request.query["end_time"].endswith("+00:00")
    assert request.query["significant_changes_only"] == "0"


async def test_history_window_starts_with_the_state_at_its_start(
    client: HomeAssistantClient, ha: FakeHomeAssistant
) -> None:
    kitchen = "media_player.kitchen_stereo_2"
    ha.set_state(kitchen, "playing", _playing("Glósóli", "c1"))
    start = datetime.now(UTC) + timedelta(milliseconds=5)
    await asyncio.sleep(0.01)
    answer = await client.history(
        [kitchen, STUDY, "media_player.nowhere"], start=start, end=start + timedelta(minutes=1)
    )
    # One list per entity that has a state; each starts with its state at the window's start.
    assert [[s["entity_id"] for s in states] for states in answer] == [[kitchen], [STUDY]]
    (kitchen_state,) = answer[0]
    assert kitchen_state["attributes"]["media_title"] == "Glósóli"
    assert datetime.fromisoformat(kitchen_state["last_changed"]) == start  # moved up to the start
    assert datetime.fromisoformat(kitchen_state["last_updated"]) == start
    assert await client.history([], start=start, end=start + timedelta(minutes=1)) == []


async def test_history_errors_are_typed(client: HomeAssistantClient, ha: FakeHomeAssistant) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    with pytest.raises(HomeAssistantError, match="Invalid filter_entity_id") as info:
        await client.history(["not an entity"], start=start, end=start + timedelta(minutes=5))
    assert info.value.transient is False
    ha.inject(Fault(503, "", "text/plain"), Fault(502, "", "text/plain"), Fault(503, "", "text/plain"))
    with pytest.raises(HomeAssistantUnavailable):
        await client.history([STUDY], start=start, end=start + timedelta(minutes=5))
    ha.inject(Fault(200, "{}", "application/json"))
    with pytest.raises(HomeAssistantError, match="unexpected shape"):
        await client.history([STUDY], start=start, end=start + timedelta(minutes=5))


async def test_the_stand_in_answers_history_like_home_assistant(ha: FakeHomeAssistant) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    start = "2026-11-30T15:00:00"
    async with httpx.AsyncClient(base_url=ha.url, headers=headers) as http:
        missing = await http.get(f"/api/history/period/{start}%2B00:00")
        assert missing.status_code == 400 and missing.json() == {"message": "filter_entity_id is missing"}
        # A bare `+` in the query reads as a space.
        bare = await http.get(
            f"/api/history/period/{start}%2B00:00?filter_entity_id={STUDY}&end_time=2026-11-30T16:00:00+00:00"
        )
        assert bare.status_code == 400 and bare.json() == {"message": "Invalid end_time"}
        bad_start = await http.get(f"/api/history/period/yesterday?filter_entity_id={STUDY}")
        assert bad_start.status_code == 400 and bad_start.json() == {"message": "Invalid datetime"}
        future = await http.get(f"/api/history/period/2999-01-01T00:00:00%2B00:00?filter_entity_id={STUDY}")
        assert future.json() == []
