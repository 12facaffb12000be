"""The Home Assistant package in deploy/homeassistant: the automation's triggers and guard,
and the rest_command's JSON, rendered from recorded Music Assistant states and sent to the
real webhook."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.deploy.homeassistant import House, condition_passes, example_secrets, fired_triggers, load_package

FIXTURE = Path(__file__).parent / "fixtures" / "music_assistant_study_speaker.json"
TOKEN = "hunter2-but-longer"


def _states() -> list[dict[str, Any]]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))["states"]


@pytest.fixture
def package() -> dict[str, Any]:
    secrets = example_secrets()
    secrets["haunt_fm_authorization"] = f"Bearer {TOKEN}"
    return load_package(secrets)


def _automation(package: dict[str, Any]) -> dict[str, Any]:
    (automation,) = [a for a in package["automation"] if a["id"] == "haunt_fm_log_music_play"]
    return automation


def _request(package: dict[str, Any], house: House, trigger: dict[str, Any]) -> dict[str, Any]:
    """What rest_command.haunt_fm_log_listen sends when the automation's action runs."""
    (action,) = _automation(package)["action"]
    assert action["service"] == "rest_command.haunt_fm_log_listen"
    data = house.render_data(action["data"], {"trigger": trigger})
    command = package["rest_command"]["haunt_fm_log_listen"]
    return {
        "method": command["method"],
        "url": command["url"],
        "headers": {"Content-Type": command["content_type"], **command["headers"]},
        "content": house.render(command["payload"], data),
    }


async def _send(base_url: str, request: dict[str, Any]) -> httpx.Response:
    url = urlsplit(request["url"])
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        return await http.request(
            request["method"],
            url.path,
            content=request["content"].encode("utf-8"),
            headers=request["headers"],
        )


def test_package_shape(package: dict[str, Any]) -> None:
    command = package["rest_command"]["haunt_fm_log_listen"]
    assert command["method"] == "POST"
    assert command["content_type"] == "application/json"
    assert urlsplit(example_secrets()["haunt_fm_webhook_url"]).path == "/api/history/webhook"
    automation = _automation(package)
    players = {e for t in automation["trigger"] for e in t["entity_id"]}
    assert "media_player.study_speaker_2" in players
    assert all(p.startswith("media_player.") and p.endswith("_2") for p in players), players
    kinds = {(t.get("to"), t.get("attribute")) for t in automation["trigger"]}
    assert kinds == {("playing", None), (None, "media_content_id")}


async def test_a_listening_session_logs_each_track_once(
    package: dict[str, Any], serve: Callable[..., str]
) -> None:
    base_url = serve(api_token=TOKEN)
    automation = _automation(package)
    states = _states()
    sent: list[tuple[str, str]] = []  # (fixture title, webhook status)
    skipped: list[tuple[int, str]] = []
    before = datetime.now(UTC)
    for step, (old, new) in enumerate(itertools.pairwise(states), start=1):
        house = House(states={new["entity_id"]: new})
        for trigger in fired_triggers(automation["trigger"], old, new):
            if not condition_passes(house, automation["condition"], trigger):
                skipped.append((step, trigger["id"]))
                continue
            response = await _send(base_url, _request(package, house, trigger))
            assert response.status_code in (200, 201), response.text
            sent.append((new["attributes"]["media_title"], response.json()["status"]))

    # off -> playing fires both triggers: sent once. The next track: sent. Pause: nothing sent;
    # the resume is sent and not stored again (replayed within the same minute here, so it is
    # answered as a duplicate; minutes later it is "resumed"). A radio stream: nothing sent.
    assert sent[:2] == [('"Heroes" - 2017 Remaster', "logged"), ("Hoppípolla", "logged")]
    assert sent[2][0] == "Hoppípolla" and sent[2][1] in ("resumed", "duplicate")
    assert len(sent) == 3
    assert skipped == [(1, "track_changed"), (5, "track_changed")]

    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        events = (await http.get("/api/history/recent", params={"limit": 10})).json()["events"]
    by_title = {e["title"]: e for e in events}
    assert len(events) == 2
    heroes = by_title['"Heroes" - 2017 Remaster']
    assert heroes["artist"] == "David Bowie"
    assert heroes["album"] == '"Heroes" (2017 Remaster)'
    assert heroes["speaker_name"] == "Study speaker"
    assert heroes["speaker_entity"] == "media_player.study_speaker_2"
    assert heroes["media_content_id"] == "apple_music://track/1440833098"
    assert heroes["duration_s"] == 371
    assert heroes["profile"] == "default"
    hopp = by_title["Hoppípolla"]
    assert (hopp["artist"], hopp["album"], hopp["duration_s"]) == ("Sigur Rós", "Takk...", 273)
    for event in events:
        played_at = datetime.fromisoformat(event["played_at"])
        assert before - timedelta(seconds=5) <= played_at <= datetime.now(UTC) + timedelta(seconds=5)


async def test_the_payload_is_json_with_the_players_fields(package: dict[str, Any]) -> None:
    states = _states()
    house = House(states={states[1]["entity_id"]: states[1]})
    (trigger,) = [
        t
        for t in fired_triggers(_automation(package)["trigger"], states[0], states[1])
        if t["id"] == "started"
    ]
    request = _request(package, house, trigger)
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(request["content"])
    assert body["title"] == '"Heroes" - 2017 Remaster'
    assert body["duration_s"] == 371 and isinstance(body["duration_s"], int)
    played_at = datetime.fromisoformat(body["played_at"])
    assert played_at.utcoffset() == timedelta(hours=-5)


async def test_music_without_an_artist_is_skipped_and_refused(
    package: dict[str, Any], client: httpx.AsyncClient
) -> None:
    states = _states()
    radio_from, radio = states[-2], states[-1]
    assert "media_artist" not in radio["attributes"]
    house = House(states={radio["entity_id"]: radio})
    automation = _automation(package)
    triggers = list(fired_triggers(automation["trigger"], radio_from, radio))
    assert triggers, "a new media_content_id while playing fires the attribute trigger"
    for trigger in triggers:
        assert not condition_passes(house, automation["condition"], trigger)
        # Were it sent anyway, the webhook refuses a listen without an artist.
        request = _request(package, house, trigger)
        response = await client.post(
            "/api/history/webhook", content=request["content"].encode(), headers=request["headers"]
        )
        assert response.status_code == 422, response.text
    events = (await client.get("/api/history/recent")).json()["events"]
    assert events == []


async def test_a_song_titled_like_a_number_stays_a_string(
    package: dict[str, Any], client: httpx.AsyncClient
) -> None:
    """Prince's "1999": HA would re-type "1999" in service data; the payload keeps it a string."""
    states = _states()
    old = states[0]
    new = json.loads(json.dumps(states[1]))
    new["attributes"].update(
        media_title="1999",
        media_artist="Prince",
        media_album_name="1999",
        media_content_id="apple_music://track/1",
    )
    house = House(states={new["entity_id"]: new})
    automation = _automation(package)
    (trigger,) = [
        t
        for t in fired_triggers(automation["trigger"], old, new)
        if condition_passes(house, automation["condition"], t)
    ]
    request = _request(package, house, trigger)
    assert json.loads(request["content"])["title"] == "1999"
    response = await client.post(
        "/api/history/webhook", content=request["content"].encode(), headers=request["headers"]
    )
    assert response.status_code == 201, response.text


def test_a_player_from_another_app_is_skipped(package: dict[str, Any]) -> None:
    states = _states()
    old = states[0]
    new = json.loads(json.dumps(states[1]))
    new["attributes"]["app_id"] = "CC1AD845"  # the Cast default media receiver
    house = House(states={new["entity_id"]: new})
    automation = _automation(package)
    triggers = list(fired_triggers(automation["trigger"], old, new))
    assert triggers
    assert not any(condition_passes(house, automation["condition"], t) for t in triggers)


def _playing(state: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    new = json.loads(json.dumps(state))
    new["state"] = "playing"
    new["attributes"].update(attributes)
    return new


async def test_pause_next_play_sends_the_new_track(
    package: dict[str, Any], client: httpx.AsyncClient
) -> None:
    """Paused, next pressed while paused, then play: the new track is a listen of its own."""
    states = _states()
    automation = _automation(package)
    playing = states[2]
    paused = json.loads(json.dumps(playing))
    paused["state"] = "paused"
    paused_next = json.loads(json.dumps(paused))
    paused_next["attributes"].update(
        media_title="Sæglópur", media_content_id="apple_music://track/1444022290", media_duration=491
    )
    resumed = _playing(paused_next)
    answers = []
    for old, new in [(states[1], playing), (playing, paused), (paused, paused_next), (paused_next, resumed)]:
        house = House(states={new["entity_id"]: new})
        for trigger in fired_triggers(automation["trigger"], old, new):
            if condition_passes(house, automation["condition"], trigger):
                request = _request(package, house, trigger)
                r = await client.post(
                    "/api/history/webhook", content=request["content"].encode(), headers=request["headers"]
                )
                answers.append((json.loads(request["content"])["title"], r.json()["status"]))
    # The track change while paused is not sent (not playing); play then sends the new track.
    assert answers == [("Hoppípolla", "logged"), ("Sæglópur", "logged")]


async def test_a_group_player_sends_its_members(package: dict[str, Any]) -> None:
    states = _states()
    group = _playing(
        states[1],
        friendly_name="Whole House",
        group_members=["media_player.kids_room_speaker_2", "media_player.study_speaker_2"],
    )
    group["entity_id"] = "media_player.whole_house_2"
    off = json.loads(json.dumps(states[0]))
    off["entity_id"] = group["entity_id"]
    house = House(states={group["entity_id"]: group})
    automation = _automation(package)
    (trigger,) = [
        t
        for t in fired_triggers(automation["trigger"], off, group)
        if condition_passes(house, automation["condition"], t)
    ]
    body = json.loads(_request(package, house, trigger)["content"])
    assert body["speaker_entity"] == "media_player.whole_house_2"
    assert body["group_members"] == ["media_player.kids_room_speaker_2", "media_player.study_speaker_2"]
    # A plain player sends its empty list; one without the attribute sends null.
    plain = House(states={states[1]["entity_id"]: states[1]})
    (trigger,) = [
        t for t in fired_triggers(automation["trigger"], states[0], states[1]) if t["id"] == "started"
    ]
    assert json.loads(_request(package, plain, trigger)["content"])["group_members"] == []
