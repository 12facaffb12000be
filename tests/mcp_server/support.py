"""The household the MCP tests talk about, and the SDK's client over HTTP and stdio.

Profiles: `antialias` (display name "Me") listens in the study; `sam` has no taste yet. The
study's known favourites sit at e0, discoveries N0..N19 lean more and more toward e1, and the
vibe "something calm" is e1 (already embedded, as a worker would have left it).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.stdio import stdio_client as stdio_transport
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult
from sqlalchemy import text

from tests.fakes import FakeHomeAssistant
from tests.playlists.support import E1, World, build_world
from tests.recommendations.support import Factory, cache_vibe, similar
from tests.support.env import clean_environ

HA_TOKEN = "SECRET-ha-long-lived-token-mcp"
API_TOKEN = "SECRET-api-token-mcp"
STUDY = "media_player.study_speaker_2"
LIVING = "media_player.living_room_speaker_2"
KIDS = "media_player.kids_room_speaker_2"
# The study speaker's own entity (Google Cast): not a Music Assistant player.
STUDY_CAST = "media_player.study_speaker"
CALM = "something calm"
EXE = str(Path(sys.executable).parent / "haunt-fm")
TOOLS = {
    "recommend",
    "play_playlist",
    "give_feedback",
    "recent_listens",
    "list_speakers",
    "list_profiles",
    "pipeline_status",
    "start_radio",
    "stop_radio",
}


def add_speakers(ha: FakeHomeAssistant) -> None:
    ha.add_player(STUDY, friendly_name="Study speaker")
    ha.add_player(LIVING, friendly_name="Living Room speaker")
    ha.add_player(KIDS, friendly_name="Kids Room speaker", state="off")
    ha.other_states[STUDY_CAST] = {
        "entity_id": STUDY_CAST,
        "state": "idle",
        "attributes": {"friendly_name": "Study speaker", "device_class": "speaker"},
    }


async def household(db: Factory) -> World:
    """antialias ("Me") with a taste and the study mapped to it; sam without a taste; the calm vibe."""
    world = await build_world(db, known=6, new=20, profile="antialias")
    async with db() as s, s.begin():
        await s.execute(text("UPDATE profiles SET display_name = 'Me' WHERE name = 'antialias'"))
        await s.execute(text("INSERT INTO profiles (name, display_name) VALUES ('sam', 'Sam')"))
        await s.execute(
            text(
                "INSERT INTO speaker_mappings (profile_id, speaker, speaker_norm) "
                "SELECT id, 'Study speaker', 'study speaker' FROM profiles WHERE name = 'antialias'"
            )
        )
    # The discovery a 50/50 blend of taste and calm likes best was found through K0.
    await similar(db, world.known[0], calm_order(world)[0], 0.9)
    await cache_vibe(db, CALM, E1)
    return world


def calm_order(world: World) -> list[int]:
    """The discoveries best first for taste (e0) and calm (e1) blended 50/50.

    Nj sits at cosine c = 0.95 - 0.02 j to e0 and sqrt(1 - c^2) to e1 (playlists.support), so its
    score against unit(e0 + e1) is (c + sqrt(1 - c^2)) / sqrt(2): highest where c is nearest 0.707.
    """
    cos = {tid: 0.95 - 0.02 * j for j, tid in enumerate(world.new)}
    return sorted(world.new, key=lambda tid: -(cos[tid] + math.sqrt(1 - cos[tid] ** 2)))


def http_client(url: str, *, token: str | None = None, mode: str = "auto", query: str = "") -> Client:
    """The SDK's client for `serve`'s /mcp (plus `query`), with the API token as a header when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    transport = streamable_http_client(f"{url}/mcp{query}", http_client=http)
    return Client(transport, mode=mode, read_timeout_seconds=60)


def stdio_env(pg_url: str, tmp_path: Path, **values: str) -> dict[str, str]:
    return clean_environ(
        HAUNTFM_DATABASE_URL=pg_url,
        HAUNTFM_DATA_DIR=str(tmp_path / "data"),
        HAUNTFM_LOG_LEVEL="WARNING",
        **values,
    )


@asynccontextmanager
async def stdio_client(env: dict[str, str], cwd: Path) -> AsyncIterator[Client]:
    """The SDK's client on a `haunt-fm mcp` process it starts; the process's stderr goes to cwd/stderr.txt."""
    params = StdioServerParameters(command=EXE, args=["mcp"], env=env, cwd=cwd)
    with (cwd / "stderr.txt").open("w") as errlog:
        async with Client(stdio_transport(params, errlog=errlog), read_timeout_seconds=120) as client:
            yield client


def document(result: CallToolResult) -> dict[str, Any]:
    """A successful call's structured answer (the same JSON as its text content)."""
    assert not result.is_error, error_text(result)
    assert result.structured_content is not None
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    """A failed call's sentence, without the prefix the SDK puts before every tool error."""
    assert result.is_error, result.structured_content
    text = " ".join(getattr(c, "text", "") for c in result.content)
    prefix, sep, sentence = text.partition(": ")
    assert sep and prefix.startswith("Error executing tool "), text
    return sentence
