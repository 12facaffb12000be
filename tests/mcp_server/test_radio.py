"""start_radio and stop_radio over /mcp: the radio service behind them, Home Assistant stood in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fakes import FakeHomeAssistant
from tests.mcp_server.support import HA_TOKEN, STUDY, document, error_text, household, http_client
from tests.recommendations.support import Factory


def _calls(ha: FakeHomeAssistant, service: str) -> list[dict[str, Any]]:
    return [c.data for c in ha.service_calls if c.service == service]


async def test_a_radio_in_the_study_starts_and_stops_by_name(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    await household(db)
    url = serve(ha_url=ha.url, ha_token=HA_TOKEN)
    async with http_client(url) as client:
        nothing = error_text(await client.call_tool("stop_radio", {"speaker": "study"}))
        assert nothing == (
            "No radio is playing on Study speaker (media_player.study_speaker_2). No radio plays anywhere."
        )

        started = document(await client.call_tool("start_radio", {"speaker": "the study", "batch": 4}))
        assert (started["speaker"], started["speaker_entity"]) == ("Study speaker", STUDY)
        assert started["profile"] == "antialias"  # the study is mapped to antialias
        assert (started["batch"], started["known_pct"], started["alpha"]) == (4, 20, 0.5)
        assert [t["position"] for t in started["queued"]] == [1, 2, 3, 4]
        assert started["first_playback"]["status"] == "played" and started["first_playback"]["queued"] == 4
        assert started["playback"]["status"] == "ok"
        assert "upcoming" not in started and "steer" not in started  # the short form
        plays = _calls(ha, "play_media")
        assert [c["enqueue"] for c in plays] == ["replace", "add", "add", "add"]
        assert [c["media_id"] for c in plays] == [t["title"] for t in started["queued"]]
        assert ha.players[STUDY].state == "playing"

        elsewhere = error_text(await client.call_tool("stop_radio", {"speaker": "living room"}))
        assert elsewhere == (
            "No radio is playing on Living Room speaker (media_player.living_room_speaker_2). "
            "Radios are playing on: Study speaker (media_player.study_speaker_2)."
        )
        stopped = document(await client.call_tool("stop_radio", {"speaker": "Study", "stop_playback": True}))
        assert stopped["radio_id"] == started["radio_id"] and stopped["ended_reason"] == "stopped"
        assert (stopped["played"], stopped["skipped"]) == (0, 0)
        assert stopped["stop_playback"]["status"] == "stopped"
        assert _calls(ha, "media_stop") == [{"entity_id": STUDY}]
        assert ha.players[STUDY].state == "idle"

        again = error_text(await client.call_tool("stop_radio", {"speaker": "study"}))
        assert again.endswith("No radio plays anywhere.")


async def test_radio_errors_are_the_api_sentences_with_the_choices(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    await household(db)
    url = serve(ha_url=ha.url, ha_token=HA_TOKEN)
    async with http_client(url) as client:
        garage = error_text(await client.call_tool("start_radio", {"speaker": "garage"}))
        assert garage.startswith("Unknown speaker 'garage'. Known speakers: Kids Room speaker")
        attic = error_text(await client.call_tool("start_radio", {"speaker": "media_player.attic_2"}))
        assert attic.startswith("Unknown speaker: Home Assistant has no entity media_player.attic_2.")
        assert attic.endswith("Study speaker (media_player.study_speaker_2).")
        sam = error_text(await client.call_tool("start_radio", {"speaker": "kids room", "profile": "Sam"}))
        assert sam.startswith("Profile 'sam' has no embedded listened or liked track yet.")
        small = await client.call_tool("start_radio", {"speaker": "study", "batch": 2})
        assert small.is_error and "batch" in " ".join(getattr(c, "text", "") for c in small.content)
    assert ha.service_calls == []
