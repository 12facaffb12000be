"""`haunt-fm mcp`: the MCP tools over stdio, for desktop assistants (Claude Desktop and the like).

The assistant starts this process and talks MCP on its stdin/stdout, so nothing else may be
written to stdout: logs and notices go to stderr. Like the other commands it opens a Runtime
against HAUNTFM_DATABASE_URL, or the embedded database (a running `haunt-fm serve`'s, when
there is one). It holds no model: a new vibe text goes to the worker queue, as with
`haunt-fm playlist`.
"""

from __future__ import annotations

import asyncio

import typer

from haunt_fm.cli import _setup_logging, _upgrade, app, database
from haunt_fm.config import Settings, get_settings


@app.command("mcp")
def mcp_command() -> None:
    """Serve the MCP tools over stdio (for Claude Desktop and other desktop assistants)."""
    settings = get_settings()
    _setup_logging(settings)
    with database(settings, attach=True) as url:
        _upgrade(url)
        try:
            asyncio.run(_serve(settings, url))
        except KeyboardInterrupt:
            typer.echo("mcp server stopped", err=True)


async def _serve(settings: Settings, url: str) -> None:
    from haunt_fm.mcp_server.backend import RuntimeBackend
    from haunt_fm.mcp_server.server import build_server
    from haunt_fm.runtime import open_runtime

    async with open_runtime(settings, database_url=url, pool_size=3) as runtime:
        backend = RuntimeBackend(runtime)
        await build_server(lambda: backend).run_stdio_async()
