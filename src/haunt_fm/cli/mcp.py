"""`haunt-fm mcp`: the MCP tools over stdio, for desktop assistants (Claude Desktop and the like).

The assistant starts this process and talks MCP on its stdin/stdout, so nothing else may be
written to stdout: logs and notices go to stderr. Like the other commands it opens a Runtime
against HAUNTFM_DATABASE_URL, or the embedded database (a running `haunt-fm serve`'s, when
there is one). It holds no model: a new vibe text goes to the worker queue, as with
`haunt-fm playlist`. Local only: an assistant elsewhere uses the service's `/mcp`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from haunt_fm.cli.common import local_only, run_on_runtime, settings, setup_logging, state

if TYPE_CHECKING:
    from haunt_fm.config import Settings
    from haunt_fm.runtime import Runtime


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp_command)


def mcp_command(ctx: typer.Context) -> None:
    """Serve the MCP tools over stdio (for Claude Desktop and other desktop assistants)."""
    current = settings()
    setup_logging(verbose=state(ctx).verbose, level=current.log_level)
    # Like serve: a HAUNTFM_URL left in a shared .env must not keep the assistant's tools away.
    local_only(ctx, service=True)
    run_on_runtime(current, _serve, stopped="mcp server stopped")


async def _serve(current: Settings, runtime: Runtime) -> None:
    from haunt_fm.mcp_server.backend import RuntimeBackend
    from haunt_fm.mcp_server.server import build_server

    backend = RuntimeBackend(runtime)
    await build_server(lambda: backend).run_stdio_async()
