"""`haunt-fm mcp`: the MCP tools over stdio, for desktop assistants (Claude Desktop and the like).

The assistant starts this process and talks MCP on its stdin/stdout, so nothing else may be
written to stdout: logs and notices go to stderr. Like the other commands it opens a Runtime
against HAUNTFM_DATABASE_URL, or the embedded database (a running `haunt-fm serve`'s, when
there is one). It holds no model: a new vibe text goes to the worker queue, as with
`haunt-fm playlist`. Local only: an assistant elsewhere uses the service's `/mcp`.
"""

from __future__ import annotations

import asyncio

import typer

from haunt_fm.cli.common import database, local_only, settings, setup_logging, state, upgrade_schema
from haunt_fm.config import Settings


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp_command)


def mcp_command(ctx: typer.Context) -> None:
    """Serve the MCP tools over stdio (for Claude Desktop and other desktop assistants)."""
    current = settings()
    setup_logging(verbose=state(ctx).verbose, level=current.log_level)
    # Like serve: a HAUNTFM_URL left in a shared .env must not keep the assistant's tools away.
    local_only(ctx, service=True)
    with database(current, attach=True) as url:
        upgrade_schema(url)
        try:
            asyncio.run(_serve(current, url))
        except KeyboardInterrupt:
            typer.echo("mcp server stopped", err=True)


async def _serve(current: Settings, url: str) -> None:
    from haunt_fm.mcp_server.backend import RuntimeBackend
    from haunt_fm.mcp_server.server import build_server
    from haunt_fm.runtime import open_runtime

    async with open_runtime(current, database_url=url, pool_size=3) as runtime:
        backend = RuntimeBackend(runtime)
        await build_server(lambda: backend).run_stdio_async()
