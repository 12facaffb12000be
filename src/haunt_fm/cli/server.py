"""`haunt-fm serve` and `haunt-fm worker`: the long-running processes (local only)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated, Any

import typer

from haunt_fm.cli.common import (
    database,
    fail,
    local_only,
    run_on_runtime,
    settings,
    setup_logging,
    state,
    upgrade_schema,
)
from haunt_fm.config import Settings

if TYPE_CHECKING:
    from haunt_fm.runtime import Runtime


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on (0.0.0.0: the LAN).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, metavar="PORT", help="Port to listen on.")
    ] = 8321,
) -> None:
    """Run the API, the dashboard and the background work (preview lookup, embedding worker)."""
    import uvicorn

    from haunt_fm.app import create_app
    from haunt_fm.server import server_config

    current = settings()
    setup_logging(verbose=state(ctx).verbose, level=current.log_level)
    local_only(ctx, service=True)
    owned: list[Any] = []
    with database(current, attach=False, owned=owned) as url:
        upgrade_schema(url)
        fatal: list[str] = []
        server: uvicorn.Server | None = None

        def give_up(message: str) -> None:
            # The embedded database could not be brought back: exit so a supervisor restarts us.
            fatal.append(message)
            if server is not None:
                server.should_exit = True

        application = create_app(
            current, database_url=url, embedded=owned[0] if owned else None, on_fatal=give_up
        )
        config = server_config(
            application, host=host, port=port, settings=current, log_level=current.log_level.lower()
        )
        server = uvicorn.Server(config)
        typer.echo(f"haunt-fm listening on http://{host}:{port}", err=True)
        # uvicorn re-raises the SIGTERM/SIGINT it handled once it has shut down: that is the
        # normal way out here (as in uvicorn.run), not an error.
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        if fatal:
            raise fail(fatal[0])


def worker(ctx: typer.Context) -> None:
    """Run the embedding worker alone (point several at one database to scale out).

    Uses HAUNTFM_DATABASE_URL, or the embedded database of a `haunt-fm serve` running on
    this machine.
    """
    current = settings()
    setup_logging(verbose=state(ctx).verbose, level=current.log_level)
    local_only(ctx, service=True)
    run_on_runtime(current, _run_worker, attach_only=True, stopped="worker stopped")


async def _run_worker(current: Settings, runtime: Runtime) -> None:
    from haunt_fm.worker.embedding import EmbeddingWorker

    worker = EmbeddingWorker(
        settings=current, session_factory=runtime.sessions, http=runtime.http, wakeups=runtime.wakeups
    )
    typer.echo(f"embedding worker {worker.id} starting (model {current.clap_model})", err=True)
    await worker.run_forever()
