"""`haunt-fm mcp` as a real process: the SDK's client starts it and talks MCP over its stdin/stdout."""

from __future__ import annotations

from pathlib import Path

from tests.fakes import FakeHomeAssistant
from tests.mcp_server.support import (
    CALM,
    HA_TOKEN,
    STUDY,
    TOOLS,
    calm_order,
    document,
    error_text,
    household,
    stdio_client,
    stdio_env,
)
from tests.recommendations.support import Factory


async def test_a_desktop_assistant_asks_for_calm_music_and_plays_it_in_the_study(
    db: Factory, pg_url: str, tmp_path: Path, ha: FakeHomeAssistant
) -> None:
    world = await household(db)
    env = stdio_env(pg_url, tmp_path, HAUNTFM_HA_URL=ha.url, HAUNTFM_HA_TOKEN=HA_TOKEN)
    async with stdio_client(env, tmp_path) as client:
        assert client.server_info is not None and client.server_info.name == "haunt-fm"
        assert client.instructions and "play_playlist" in client.instructions
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS

        recs = document(await client.call_tool("recommend", {"profile": "me", "vibe": CALM, "limit": 3}))
        assert recs["profile"] == "antialias" and recs["basis"] == "taste+vibe"
        assert [t["track_id"] for t in recs["tracks"]] == calm_order(world)[:3]

        played = document(await client.call_tool("play_playlist", {"speaker": "Study", "total_tracks": 4}))
        assert played["speaker_entity"] == STUDY and played["playback"]["status"] == "played"
        assert len(ha.service_calls) == 4 and ha.players[STUDY].state == "playing"

        unknown = await client.call_tool("play_playlist", {"speaker": "garage"})
        assert error_text(unknown).startswith("Unknown speaker 'garage'. Known speakers: Kids Room speaker")

        no_taste = await client.call_tool("recommend", {"profile": "Sam"})
        assert error_text(no_taste).startswith("Profile 'sam' has no embedded listened or liked track yet.")
    stderr = (tmp_path / "stderr.txt").read_text()
    assert HA_TOKEN not in stderr and "Traceback" not in stderr, stderr


async def test_stdio_without_home_assistant_says_how_to_configure_it(
    db: Factory, pg_url: str, tmp_path: Path
) -> None:
    await household(db)
    async with stdio_client(stdio_env(pg_url, tmp_path), tmp_path) as client:
        result = await client.call_tool("play_playlist", {"speaker": "the study"})
        assert error_text(result) == (
            "Playback needs Home Assistant: set HAUNTFM_HA_URL and HAUNTFM_HA_TOKEN (a long-lived access "
            "token), then generate the playlist again."
        )
        radio = await client.call_tool("start_radio", {"speaker": "the study"})
        assert error_text(radio) == (
            "A radio plays through Home Assistant: set HAUNTFM_HA_URL and HAUNTFM_HA_TOKEN (a long-lived "
            "access token), then start it again."
        )
        speakers = document(await client.call_tool("list_speakers", {}))
        assert speakers["home_assistant"].startswith("Home Assistant is not configured")
        # The mapping still names the study, with its profile.
        assert [(s["name"], s["profile"]) for s in speakers["speakers"]] == [("Study speaker", "antialias")]
