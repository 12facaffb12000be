"""The MCP server: haunt-fm's tools and resources, built with the official `mcp` SDK (MCPServer).

`build_server` is transport-free: `haunt-fm mcp` runs it over stdio, `serve` mounts it at
/mcp over streamable HTTP (`mount`). Adding a tool is a method on `Tools` and a line in
`TOOLS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import BaseModel
from starlette.routing import BaseRoute

from haunt_fm import __version__
from haunt_fm.mcp_server.backend import AppBackend, Backend
from haunt_fm.mcp_server.tools import Tools
from haunt_fm.middleware import MAX_BODY_BYTES

PATH = "/mcp"

INSTRUCTIONS = """\
haunt-fm is this household's music recommender. It learns each person's taste (a profile) from
what they play on the speakers, finds new music like it, and plays playlists through Music
Assistant. People and speakers can be named as people say them ("Alex", "the kitchen").
- "Play something calm in the study" -> play_playlist(speaker="study", vibe="calm").
- "What should I listen to?" -> recommend(profile=<who is asking>).
- "I don't like this song" -> give_feedback(speaker=<where it plays>, rating="down").
- "Keep music going in the kitchen" -> start_radio(speaker="kitchen"); "stop the radio" ->
  stop_radio(speaker=...).
- "What was that song?" -> recent_listens(speaker=...). Unsure who or where: list_profiles,
  list_speakers. Nothing to recommend yet: pipeline_status says what is still being processed.
"""

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


@dataclass(frozen=True)
class ToolSpec:
    """A method of `Tools` served as a tool; its docstring is the description."""

    name: str
    title: str
    annotations: ToolAnnotations


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("recommend", "Recommend music", READ_ONLY),
    ToolSpec(
        "play_playlist",
        "Play a playlist on a speaker",
        # It replaces what the speaker was playing, and it reaches outside (Home Assistant).
        ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
        ),
    ),
    ToolSpec(
        "give_feedback",
        "Thumbs up or down",
        # Rating a track again for the same person and vibe replaces the earlier rating.
        ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    ),
    ToolSpec(
        "start_radio",
        "Start a radio on a speaker",
        # Like play_playlist it replaces what the speaker plays (and any radio on it).
        ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
        ),
    ),
    ToolSpec(
        "stop_radio",
        "Stop the radio on a speaker",
        # Stopping again finds no radio (a tool error) but changes nothing more.
        ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True
        ),
    ),
    ToolSpec("recent_listens", "Recent listens", READ_ONLY),
    ToolSpec("list_speakers", "Speakers", ToolAnnotations(read_only_hint=True, open_world_hint=True)),
    ToolSpec("list_profiles", "Profiles", READ_ONLY),
    ToolSpec("pipeline_status", "haunt-fm status", READ_ONLY),
)

M = TypeVar("M", bound=BaseModel)


async def _resource(read: Awaitable[M], *, missing: bool = False) -> str:
    """A tool's document as a JSON resource; a tool error becomes the SDK's resource error."""
    try:
        return (await read).model_dump_json(indent=2)
    except ToolError as exc:
        raise (ResourceNotFoundError if missing else ResourceError)(str(exc)) from None


def build_server(backend: Callable[[], Backend]) -> MCPServer:
    """The MCP server with every tool and resource, calling the services through `backend()`."""
    server: MCPServer = MCPServer(
        name="haunt-fm", title="haunt-fm", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    tools = Tools(backend)
    for spec in TOOLS:
        method: Callable[..., Any] = getattr(tools, spec.name)
        server.add_tool(
            method,
            name=spec.name,
            title=spec.title,
            description=inspect.cleandoc(method.__doc__ or ""),
            annotations=spec.annotations,
        )

    @server.resource(
        "haunt-fm://status",
        name="status",
        title="haunt-fm status",
        description="The pipeline's state (the /api/status document).",
        mime_type="application/json",
    )
    async def status() -> str:
        return await _resource(tools.status_document())

    @server.resource(
        "haunt-fm://profiles",
        name="profiles",
        title="Profiles",
        description="Every profile with its listens, speakers and taste (GET /api/profiles).",
        mime_type="application/json",
    )
    async def profile_list() -> str:
        return await _resource(tools.list_profiles())

    @server.resource(
        "haunt-fm://profiles/{name}",
        name="profile",
        title="A profile's taste",
        description="One profile's taste and stats (GET /api/profiles/{name}).",
        mime_type="application/json",
    )
    async def profile(name: str) -> str:
        return await _resource(tools.profile_document(name), missing=True)

    return server


def mount(app: Any) -> StreamableHTTPSessionManager:
    """Serve the MCP server at /mcp on the app; run the returned manager in the app's lifespan.

    Stateless and answering plain JSON: every tool call is one POST whose answer is one JSON
    document (no server-side session to lose when `serve` restarts, nothing streamed past the
    app's middleware). The SDK's Host/Origin check is off: like /api/*, /mcp is reached by the
    LAN names people give the host and is guarded by HAUNTFM_API_TOKEN.
    """
    server = build_server(lambda: AppBackend(app))
    asgi = server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        json_response=True,
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    routes: list[BaseRoute] = [r for r in asgi.routes if getattr(r, "path", None) == PATH]
    app.router.routes.extend(routes)
    return server.session_manager
