"""The MCP server at /mcp on the real service, through the SDK's own client, Home Assistant stood in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fakes import FakeHomeAssistant
from tests.mcp_server.support import (
    API_TOKEN,
    CALM,
    HA_TOKEN,
    STUDY,
    TOOLS,
    calm_order,
    document,
    error_text,
    household,
    http_client,
)
from tests.recommendations.support import Factory


def play_calls(ha: FakeHomeAssistant) -> list[dict[str, Any]]:
    return [c.data for c in ha.service_calls if (c.domain, c.service) == ("music_assistant", "play_media")]


# "auto" speaks the 2026 protocol; "legacy" is the initialize handshake older clients (Home
# Assistant's MCP integration, Claude Desktop) use.
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_assistant_asks_for_calm_music_and_plays_it_in_the_study(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant, mode: str
) -> None:
    world = await household(db)
    url = serve(ha_url=ha.url, ha_token=HA_TOKEN)
    async with http_client(url, mode=mode) as client:
        assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        for tool in listed.tools:
            assert tool.description and len(tool.description) > 80, tool.name

        recs = document(await client.call_tool("recommend", {"profile": "Me", "vibe": CALM, "limit": 5}))
        assert recs["profile"] == "antialias" and recs["vibe"] == CALM and recs["basis"] == "taste+vibe"
        tracks = recs["tracks"]
        assert [t["track_id"] for t in tracks] == calm_order(world)[:5]
        assert [t["score"] for t in tracks] == sorted((t["score"] for t in tracks), reverse=True)
        assert tracks[0]["title"] == "N12" and tracks[0]["artist"] == "New Artist 12"
        assert tracks[0]["why"] == "Last.fm lists it as similar to 'K0' by Known Artist 0."
        assert tracks[1]["why"] is None

        played = document(
            await client.call_tool("play_playlist", {"speaker": "the study", "vibe": CALM, "total_tracks": 6})
        )
        assert played["speaker"] == "Study speaker" and played["speaker_entity"] == STUDY
        assert played["profile"] == "antialias"  # the study is mapped to antialias
        assert played["playback"]["status"] == "played" and played["playback"]["queued"] == 6
        assert [c["media_id"] for c in play_calls(ha)] == [t["title"] for t in played["tracks"]]
        assert {c["entity_id"] for c in play_calls(ha)} == {STUDY}
        assert ha.players[STUDY].now_playing is not None
        assert ha.players[STUDY].now_playing["media_title"] == played["tracks"][0]["title"]

        unknown = await client.call_tool("play_playlist", {"speaker": "the attic"})
        assert error_text(unknown) == (
            "Unknown speaker 'the attic'. Known speakers: "
            "Kids Room speaker (media_player.kids_room_speaker_2), "
            "Living Room speaker (media_player.living_room_speaker_2), "
            "Study speaker (media_player.study_speaker_2)."
        )
    assert len(play_calls(ha)) == 6  # the unknown speaker played nothing


async def test_the_token_guards_mcp_like_the_api(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant
) -> None:
    url = serve(api_token=API_TOKEN)
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-03-26",
            "capabilities": {},
            "clientInfo": {"name": "curl", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for sent in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}):
            r = await http.post("/mcp", json=initialize, headers={**headers, **sent})
            assert r.status_code == 401, r.text
            assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
        assert (await http.get("/mcp")).status_code == 401
        bearer = {"Authorization": f"Bearer {API_TOKEN}"}
        ok = await http.post("/mcp", json=initialize, headers={**headers, **bearer})
        assert ok.status_code == 200, ok.text
        assert ok.json()["result"]["serverInfo"]["name"] == "haunt-fm"
        assert (await http.get("/health")).status_code == 200  # still open
        # For clients that take only a URL (Home Assistant): the token in the query, on /mcp only.
        by_query = await http.post(f"/mcp?token={API_TOKEN}", json=initialize, headers=headers)
        assert by_query.status_code == 200, by_query.text
        for query in ("token=wrong", f"token={API_TOKEN}&token=x", "token=%FF%00"):
            assert (await http.post(f"/mcp?{query}", json=initialize, headers=headers)).status_code == 401
        assert (await http.get(f"/api/status?token={API_TOKEN}")).status_code == 401
    async with http_client(url, token=API_TOKEN) as client:
        profiles = document(await client.call_tool("list_profiles", {}))
        assert [p["name"] for p in profiles["profiles"]] == ["default"]
    async with http_client(url, query=f"?token={API_TOKEN}", mode="legacy") as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS


async def test_the_readme_curl_lists_the_tools(serve: Callable[..., str], db: Factory) -> None:
    """Stateless: one POST, no handshake, one JSON answer (what the README shows with curl)."""
    url = serve()
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    body = '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}'
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.post("/mcp", content=body, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.text
    assert {t["name"] for t in r.json()["result"]["tools"]} == TOOLS
