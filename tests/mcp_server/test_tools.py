"""Each tool over /mcp against the real service: names as people say them, and errors as sentences."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import TextResourceContents
from sqlalchemy import text

from tests.fakes import FakeHomeAssistant
from tests.mcp_server.support import (
    CALM,
    HA_TOKEN,
    KIDS,
    LIVING,
    STUDY,
    STUDY_CAST,
    calm_order,
    document,
    error_text,
    household,
    http_client,
)
from tests.playlists.support import closed_port_url
from tests.recommendations.support import Factory, listen


async def _feedback_rows(db: Factory) -> list[tuple[Any, ...]]:
    async with db() as s:
        rows = await s.execute(
            text(
                "SELECT p.name, f.track_id, f.rating, f.vibe FROM feedback f "
                "JOIN profiles p ON p.id = f.profile_id ORDER BY f.id"
            )
        )
        return [tuple(r) for r in rows]


async def test_thumbs_down_for_what_is_playing_in_the_study(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    world = await household(db)
    best = calm_order(world)[0]
    ha.set_playing(STUDY, title="N12", artist="New Artist 12")
    url = serve(ha_url=ha.url, ha_token=HA_TOKEN)
    async with http_client(url) as client:
        before = document(await client.call_tool("recommend", {"profile": "antialias", "vibe": CALM}))
        assert before["tracks"][0]["track_id"] == best

        down = document(await client.call_tool("give_feedback", {"speaker": "the study", "rating": "down"}))
        assert (down["track_id"], down["title"], down["artist"]) == (best, "N12", "New Artist 12")
        assert down["profile"] == "antialias" and down["vibe"] == "general" and not down["replaced"]
        assert down["found_by"] == "playing on Study speaker"
        assert await _feedback_rows(db) == [("antialias", best, "down", "general")]

        after = document(await client.call_tool("recommend", {"profile": "antialias", "vibe": CALM}))
        assert best not in {t["track_id"] for t in after["tracks"]}

        # By id, for someone else, under a vibe.
        up = document(
            await client.call_tool(
                "give_feedback", {"track_id": world.new[3], "rating": "up", "profile": "Sam", "vibe": CALM}
            )
        )
        assert (up["profile"], up["vibe"], up["found_by"]) == ("sam", CALM, f"track {world.new[3]}")

        neither = await client.call_tool("give_feedback", {"rating": "up"})
        both = await client.call_tool("give_feedback", {"rating": "up", "track_id": 1, "speaker": "study"})
        for result in (neither, both):
            assert error_text(result).startswith("Name the track: pass track_id")
        missing = await client.call_tool("give_feedback", {"rating": "up", "track_id": 99999})
        assert error_text(missing) == "Track 99999 does not exist."

        # Playing but never logged: no guessing.
        ha.set_playing(STUDY, title="Unheard Song", artist="Nobody")
        unheard = await client.call_tool("give_feedback", {"speaker": "study", "rating": "down"})
        assert error_text(unheard).startswith("'Unheard Song' by Nobody is playing on Study speaker, but")
        ha.set_playing(STUDY, title="BBC Radio 6 Music", artist=None)
        radio = await client.call_tool("give_feedback", {"speaker": "study", "rating": "down"})
        assert "which has no artist" in error_text(radio)
    assert len(await _feedback_rows(db)) == 2


async def test_feedback_falls_back_to_the_last_listen_on_a_quiet_speaker(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    world = await household(db)
    async with db() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO listen_events (track_id, profile_id, played_at, title, artist, speaker_name, "
                "speaker_entity) SELECT :t, id, now() - interval '5 minutes', 'K2', 'Known Artist 2', "
                "'Living Room speaker', :e FROM profiles WHERE name = 'default'"
            ),
            {"t": world.known[2], "e": LIVING},
        )
    url = serve(ha_url=ha.url, ha_token=HA_TOKEN)
    async with http_client(url) as client:
        up = document(await client.call_tool("give_feedback", {"speaker": "living room", "rating": "up"}))
        assert up["track_id"] == world.known[2] and up["profile"] == "default"
        assert up["found_by"].startswith("last played on Living Room speaker at ")
        quiet = await client.call_tool("give_feedback", {"speaker": "kids room", "rating": "up"})
        assert error_text(quiet) == (
            "Nothing is playing on Kids Room speaker and no listen was logged there; pass track_id instead."
        )


async def test_recent_listens_by_person_and_speaker(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    await household(db)
    url = serve(ha_url=ha.url, ha_token=HA_TOKEN)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for title, speaker_name, entity in (
            ("Kids Song", "Kids Room speaker", KIDS),
            ("Study Song", "Study speaker", STUDY),
            ("Study Song 2", "Study speaker", None),  # the name alone, as an older automation sends
        ):
            body = {"title": title, "artist": "Someone", "speaker_name": speaker_name}
            body |= {"speaker_entity": entity} if entity else {}
            assert (await http.post("/api/history/webhook", json=body)).status_code == 201
    async with http_client(url) as client:
        study = document(await client.call_tool("recent_listens", {"speaker": "The Study"}))
        assert study["speaker"] == "Study speaker"
        assert [e["title"] for e in study["events"]] == ["Study Song 2", "Study Song"]
        assert {e["profile"] for e in study["events"]} == {"antialias"}  # the study's mapping
        mine = document(await client.call_tool("recent_listens", {"profile": "Me", "limit": 1}))
        assert mine["profile"] == "antialias" and [e["title"] for e in mine["events"]] == ["Study Song 2"]
        kids = document(await client.call_tool("recent_listens", {"speaker": "kids room speaker"}))
        assert [e["title"] for e in kids["events"]] == ["Kids Song"]
        everyone = document(await client.call_tool("recent_listens", {}))
        assert everyone["events"][0]["title"] == "Study Song 2" and len(everyone["events"]) == 10


async def test_speakers_and_profiles_with_friendly_names(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    await household(db)
    ha.set_playing(LIVING, title="Roads", artist="Portishead")
    url = serve(ha_url=ha.url, ha_token=HA_TOKEN)
    async with http_client(url) as client:
        speakers = document(await client.call_tool("list_speakers", {}))
        assert speakers["home_assistant"] == "ok"
        by_entity = {s["entity_id"]: s for s in speakers["speakers"]}
        assert set(by_entity) == {KIDS, LIVING, STUDY}  # not the study's own Cast entity
        assert all(STUDY_CAST not in (s["entity_id"], *s["also_known_as"]) for s in speakers["speakers"])
        assert by_entity[LIVING]["now_playing"] == "Roads by Portishead"
        assert by_entity[KIDS]["state"] == "off" and by_entity[KIDS]["now_playing"] is None
        study = by_entity[STUDY]
        assert (study["name"], study["profile"]) == ("Study speaker", "antialias")
        assert study["music_assistant"]
        assert study["sources"] == ["home_assistant", "mapping"]

        profiles = document(await client.call_tool("list_profiles", {}))
        assert [(p["name"], p["display_name"]) for p in profiles["profiles"]] == [
            ("default", "Default"),
            ("antialias", "Me"),
            ("sam", "Sam"),
        ]
        status = document(await client.call_tool("pipeline_status", {}))
        # One live worker: the one cache_vibe left to vouch for the text tower.
        assert status["home_assistant"]["configured"] is True and status["worker"]["live_workers"] == 1

        ambiguous = await client.call_tool("play_playlist", {"speaker": "room"})
        assert error_text(ambiguous) == (
            "'room' could be Kids Room speaker (media_player.kids_room_speaker_2) or "
            "Living Room speaker (media_player.living_room_speaker_2); say which speaker."
        )
        nobody = await client.call_tool("recommend", {"profile": "Bob", "vibe": CALM})
        assert error_text(nobody) == (
            "Profile 'Bob' does not exist. Known profiles: default (Default), antialias (Me), sam (Sam)."
        )
        # An entity id nobody mentioned goes to Home Assistant as written: its answer, and the choices.
        attic = await client.call_tool("play_playlist", {"speaker": "media_player.attic_2", "profile": "me"})
        assert error_text(attic).startswith(
            "Unknown speaker: Home Assistant has no entity media_player.attic_2. Use a Music Assistant player"
        )
        assert error_text(attic).endswith("Study speaker (media_player.study_speaker_2).")
        # Bad arguments are refused by the tool's schema, before anything runs.
        bad = await client.call_tool("play_playlist", {"speaker": "study", "total_tracks": 500})
        assert bad.is_error and "total_tracks" in " ".join(getattr(c, "text", "") for c in bad.content)
    assert ha.service_calls == []


async def test_resources_hold_the_profiles_and_the_status(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    await household(db)
    await listen(db, 1, profile="sam")
    url = serve()
    async with http_client(url) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        assert listed == {"haunt-fm://status", "haunt-fm://profiles"}
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["haunt-fm://profiles/{name}"]

        def read(result: Any) -> Any:
            [content] = result.contents
            assert isinstance(content, TextResourceContents) and content.mime_type == "application/json"
            return json.loads(content.text)

        me = read(await client.read_resource("haunt-fm://profiles/Me"))
        assert me["name"] == "antialias" and me["listens"] == 21 and me["speakers"] == ["Study speaker"]
        everyone = read(await client.read_resource("haunt-fm://profiles"))
        assert [p["name"] for p in everyone["profiles"]] == ["default", "antialias", "sam"]
        status = read(await client.read_resource("haunt-fm://status"))
        assert status["pipeline"]["listens"] == 22 and status["homeassistant"]["configured"] is False
        with pytest.raises(MCPError, match=r"^Profile 'nobody' does not exist\. Known profiles: default"):
            await client.read_resource("haunt-fm://profiles/nobody")


async def test_database_away_is_a_tool_error_with_the_api_sentence(
    serve_app: Callable[..., tuple[str, Any]], db: Factory
) -> None:
    url, app = serve_app()
    async with http_client(url) as client:
        app.state.db_away = "The embedded PostgreSQL stopped; restarting it (attempt 1)."
        away = await client.call_tool("list_profiles", {})
        assert error_text(away) == "The embedded PostgreSQL stopped; restarting it (attempt 1)."
        app.state.db_away = None
        assert document(await client.call_tool("list_profiles", {}))["profiles"][0]["name"] == "default"


async def test_the_request_guard_covers_mcp(serve: Callable[..., str], db: Factory) -> None:
    url = serve()
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"padding": "x" * 70_000}}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        big = await http.post("/mcp", content=json.dumps(call), headers=headers)
        assert big.status_code == 413 and big.json()["error"] == "payload_too_large"
        nul_call = b'{"jsonrpc": "2.0", "id": 1, "method": "x\\u0000"}'
        nul = await http.post("/mcp", content=nul_call, headers=headers)
        assert nul.status_code == 422 and nul.json()["error"] == "invalid"
        slash = await http.get("/mcp/")
        assert slash.status_code == 307 and slash.headers["location"] == f"{url}/mcp"


async def test_home_assistant_down_is_said_with_the_speakers_haunt_fm_still_knows(
    serve: Callable[..., str], db: Factory
) -> None:
    await household(db)
    url = serve(ha_url=closed_port_url(), ha_token=HA_TOKEN)
    async with http_client(url) as client:
        speakers = document(await client.call_tool("list_speakers", {}))
        assert speakers["home_assistant"].startswith("Home Assistant at http://127.0.0.1:")
        assert "could not be reached" in speakers["home_assistant"]
        assert [s["name"] for s in speakers["speakers"]] == ["Study speaker"]  # from the mapping
        study = error_text(await client.call_tool("play_playlist", {"speaker": "study"}))
        assert study.startswith("haunt-fm knows 'Study speaker' only by name")
        assert "could not be reached" in study and "Check HAUNTFM_HA_URL" in study
        kitchen = error_text(await client.call_tool("play_playlist", {"speaker": "kitchen"}))
        known = "Known speakers: Study speaker (Home Assistant at http://127.0.0.1:"
        assert kitchen.startswith(f"Unknown speaker 'kitchen'. {known}")
