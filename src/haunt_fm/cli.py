"""Command line: `haunt-fm serve | worker | db upgrade | ...`."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Iterator

import typer

from haunt_fm.config import Settings, get_settings

app = typer.Typer(
    help="haunt-fm: a personal music recommendation engine for a household.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")

log = logging.getLogger("haunt_fm")


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs full request URLs at INFO, which would include the Last.fm api_key.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def database(settings: Settings, *, attach: bool) -> Iterator[str]:
    """The database URL, starting the embedded server when HAUNTFM_DATABASE_URL is unset."""
    from haunt_fm.db.embedded import EmbeddedDatabaseError, EmbeddedPostgres

    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    server = EmbeddedPostgres(settings.data_dir)
    try:
        url = server.start(attach=attach)
    except EmbeddedDatabaseError as exc:
        raise _fail(str(exc)) from None
    if server.owner:
        typer.echo(f"embedded PostgreSQL running (data: {server.paths.root})", err=True)
    # SIGTERM should stop the embedded server as cleanly as Ctrl-C does.
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield url
    finally:
        if server.owner:
            typer.echo("stopping embedded PostgreSQL", err=True)
        server.stop()


def _upgrade(url: str) -> None:
    from haunt_fm.db.migrate import PgvectorMissing, upgrade

    try:
        upgrade(url)
    except PgvectorMissing as exc:
        raise _fail(str(exc)) from None


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8321, help="Port to listen on."),
) -> None:
    """Run the API (and the embedding worker, when HAUNTFM_EMBEDDING_WORKER_ENABLED)."""
    import uvicorn

    from haunt_fm.app import create_app

    settings = get_settings()
    _setup_logging(settings)
    with database(settings, attach=False) as url:
        _upgrade(url)
        application = create_app(settings, database_url=url)
        typer.echo(f"haunt-fm listening on http://{host}:{port}", err=True)
        uvicorn.run(application, host=host, port=port, log_level=settings.log_level.lower(), access_log=False)


@app.command()
def worker() -> None:
    """Run the embedding worker alone (point several at one database to scale out)."""
    settings = get_settings()
    _setup_logging(settings)
    raise _fail("the embedding worker is not available yet.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema to the latest version."""
    settings = get_settings()
    _setup_logging(settings)
    with database(settings, attach=True) as url:
        _upgrade(url)
    typer.echo("database schema is up to date")


if __name__ == "__main__":
    app()
