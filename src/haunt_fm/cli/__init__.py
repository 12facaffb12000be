"""Command line: `haunt-fm serve | worker | db upgrade | ...`."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from haunt_fm.config import Settings, SettingsError, get_settings


class _CheckedSettings(TyperGroup):
    """Every command: an unusable setting stops it with one line and exit status 2, no traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from None


from haunt_fm.cli.radio import app as radio_app  # noqa: E402  (after the group class it doesn't need)

app = typer.Typer(
    cls=_CheckedSettings,
    help="haunt-fm: a personal music recommendation engine for a household.",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks with local variables would print database URLs and API keys.
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(radio_app, name="radio")
import_app = typer.Typer(help="Import listening history (Last.fm, ListenBrainz).", no_args_is_help=True)
app.add_typer(import_app, name="import")

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
    from haunt_fm import logs

    logs.install()


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


# Runs before every command: a retired setting stops it with the sentence naming its replacement.
# (No docstring: it would replace the app's help text.)
@app.callback()
def _refuse_retired_settings() -> None:
    for message in get_settings().retired():
        raise _fail(message)


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def database(
    settings: Settings, *, attach: bool, attach_only: bool = False, owned: list[Any] | None = None
) -> Iterator[str]:
    """The database URL, starting the embedded server when HAUNTFM_DATABASE_URL is unset.

    `owned` receives the embedded server when this process started it (serve supervises it).
    """
    from haunt_fm.db.embedded import EmbeddedDatabaseError, EmbeddedPostgres

    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    server = EmbeddedPostgres(settings.data_dir)
    try:
        url = server.start(attach=attach, attach_only=attach_only)
    except EmbeddedDatabaseError as exc:
        raise _fail(str(exc)) from None
    if server.owner:
        typer.echo(f"embedded PostgreSQL running (data: {server.paths.root})", err=True)
        if owned is not None:
            owned.append(server)
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
    from haunt_fm.db.session import redact_url

    try:
        upgrade(url)
    except PgvectorMissing as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    except (OSError, ConnectionError) as exc:
        raise _fail(f"cannot reach PostgreSQL at {redact_url(url)}: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("asyncpg", "sqlalchemy")):
            raise _fail(f"database error at {redact_url(url)}: {type(exc).__name__}: {exc}") from None
        raise


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8321, help="Port to listen on."),
) -> None:
    """Run the API (and the embedding worker, when HAUNTFM_EMBEDDING_WORKER_ENABLED)."""
    import uvicorn

    from haunt_fm.app import create_app
    from haunt_fm.server import server_config

    settings = get_settings()
    _setup_logging(settings)
    owned: list[Any] = []
    with database(settings, attach=False, owned=owned) as url:
        _upgrade(url)
        fatal: list[str] = []
        server: uvicorn.Server | None = None

        def give_up(message: str) -> None:
            # The embedded database could not be brought back: exit so a supervisor restarts us.
            fatal.append(message)
            if server is not None:
                server.should_exit = True

        application = create_app(
            settings, database_url=url, embedded=owned[0] if owned else None, on_fatal=give_up
        )
        config = server_config(
            application, host=host, port=port, settings=settings, log_level=settings.log_level.lower()
        )
        server = uvicorn.Server(config)
        typer.echo(f"haunt-fm listening on http://{host}:{port}", err=True)
        # uvicorn re-raises the SIGTERM/SIGINT it handled once it has shut down: that is the
        # normal way out here (as in uvicorn.run), not an error.
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        if fatal:
            raise _fail(fatal[0])


@app.command()
def worker() -> None:
    """Run the embedding worker alone (point several at one database to scale out).

    Uses HAUNTFM_DATABASE_URL, or the embedded database of a `haunt-fm serve` running on
    this machine.
    """
    import asyncio

    settings = get_settings()
    _setup_logging(settings)
    with database(settings, attach=True, attach_only=True) as url:
        _upgrade(url)
        try:
            asyncio.run(_run_worker(settings, url))
        except KeyboardInterrupt:
            typer.echo("worker stopped", err=True)


async def _run_worker(settings: Settings, url: str) -> None:
    from haunt_fm.runtime import open_runtime
    from haunt_fm.worker.embedding import EmbeddingWorker

    async with open_runtime(settings, database_url=url, pool_size=3) as runtime:
        worker = EmbeddingWorker(
            settings=settings, session_factory=runtime.sessions, http=runtime.http, wakeups=runtime.wakeups
        )
        typer.echo(f"embedding worker {worker.id} starting (model {settings.clap_model})", err=True)
        await worker.run_forever()


@app.command()
def playlist(
    tracks: int = typer.Option(20, "--tracks", help="Tracks in the playlist, 1..200."),
    known_pct: float = typer.Option(30, "--known-pct", help="Share of known favourites, 0..100."),
    speaker: str | None = typer.Option(None, "--speaker", help="Music Assistant player entity id."),
    play: bool = typer.Option(False, "--play", help="Play it on --speaker now."),
    profile: str | None = typer.Option(None, "--profile", help="Profile name (default: default)."),
    vibe: str | None = typer.Option(None, "--vibe", help="Mood text, e.g. 'chill ambient lo-fi'."),
    alpha: float = typer.Option(0.5, "--alpha", help="Taste weight against the vibe, 0..1."),
) -> None:
    """Generate a playlist (and play it with --play), as POST /api/playlists/generate does.

    Exit status 2 when playback was asked for and failed (the playlist is saved all the same).
    """
    import asyncio

    from rich.console import Console

    from haunt_fm.cli import playlists
    from haunt_fm.errors import AppError

    settings = get_settings()
    _setup_logging(settings)
    try:
        request = playlists.build_request(
            tracks=tracks, known_pct=known_pct, speaker=speaker, play=play, profile=profile, vibe=vibe,
            alpha=alpha,
        )  # fmt: skip
        with database(settings, attach=True) as url:
            _upgrade(url)
            result = asyncio.run(playlists.run(settings, url, request=request))
    except AppError as exc:
        raise _fail(exc.message) from None
    playlists.render(result, Console())
    if result.playback.requested and result.playback.status == "failed":
        raise typer.Exit(code=2)


@app.command()
def discover(
    limit: int = typer.Option(50, min=1, max=500, help="Similar tracks asked for per seed (1..500)."),
    profile: str | None = typer.Option(None, help="Only this profile's listened tracks (default: all)."),
    max_seeds: int | None = typer.Option(None, min=1, help="Expand at most this many seeds now."),
    force: bool = typer.Option(False, "--force", help="Also expand seeds expanded recently."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Expand listened tracks through Last.fm (what POST /api/admin/discover does), with progress."""
    from haunt_fm.cli import discovery as command
    from haunt_fm.errors import AppError

    settings = get_settings()
    _setup_logging(settings)
    if not settings.lastfm_configured:
        from haunt_fm.pipeline.discovery.service import NO_KEY_MESSAGE

        raise _fail(NO_KEY_MESSAGE)
    with database(settings, attach=True) as url:
        _upgrade(url)
        try:
            command.run(
                settings, url, limit=limit, profile=profile, max_seeds=max_seeds, force=force, as_json=as_json
            )
        except AppError as exc:
            raise _fail(exc.message) from None
        except KeyboardInterrupt:
            raise _fail("discovery interrupted; the seeds expanded so far are kept.") from None


@app.command()
def backfill(
    since: str = typer.Option(..., "--since", help="Start: a date (2026-11-20, UTC) or an ISO-8601 time."),
    until: str | None = typer.Option(None, "--until", help="End (default: now), same forms."),
) -> None:
    """Recover listens the webhook missed from Home Assistant's history between two times.

    Home Assistant keeps 10 days by default. Listens already stored are not stored again.
    """
    from haunt_fm.cli import history as command

    settings = get_settings()
    _setup_logging(settings)
    if not settings.ha_configured:
        raise _fail("backfill reads Home Assistant's history: set HAUNTFM_HA_URL and HAUNTFM_HA_TOKEN.")
    try:
        start = command.parse_when(since)
        end = command.parse_when(until) if until else None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if end is not None and end <= start:
        raise _fail("--until must be after --since.")
    with database(settings, attach=True) as url:
        _upgrade(url)
        run = command.run(settings, url, since=start, until=end)
    typer.echo(
        f"read {run.start.isoformat()} .. {run.end.isoformat()} for {len(run.players)} player(s): "
        f"{run.states_read} recorded states, {run.listens_found} listen reports, "
        f"{run.recovered} listen(s) recovered"
    )
    if run.error:
        raise _fail(run.error)


# -- history imports -------------------------------------------------------------------------

_SINCE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def _import(settings: Settings, start: Any, *, as_json: bool) -> None:
    from haunt_fm.cli import imports as command
    from haunt_fm.errors import AppError

    with database(settings, attach=True) as url:
        _upgrade(url)
        try:
            result = command.run(settings, url, start=start, as_json=as_json)
        except AppError as exc:
            raise _fail(exc.message) from None
        except KeyboardInterrupt:
            raise _fail(
                "import interrupted; it keeps its place: run the same command again to continue it "
                "(a running `haunt-fm serve` continues it too)."
            ) from None
    if result.status == "failed":
        raise _fail(result.error or "the import failed.")


@import_app.command("lastfm")
def import_lastfm(
    user: str = typer.Option(..., "--user", help="The Last.fm username."),
    profile: str | None = typer.Option(None, help="Profile to import into (default: default)."),
    since: datetime | None = typer.Option(
        None, formats=_SINCE_FORMATS, help="Only scrobbles from then on (2025-01-01; UTC)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the import as JSON."),
) -> None:
    """Import a Last.fm user's scrobbles as listens (what POST /api/admin/import/lastfm does).

    Running it again while an import of that user is unfinished continues that import.
    """
    from haunt_fm.pipeline.imports import service

    settings = get_settings()
    _setup_logging(settings)
    if not settings.lastfm_configured:
        raise _fail(service.NO_KEY_MESSAGE)

    async def start(runtime: Any) -> Any:
        return await service.start_lastfm(
            sessions=runtime.sessions, settings=settings, http=runtime.http, user=user, profile=profile,
            since=since,
        )  # fmt: skip

    _import(settings, start, as_json=as_json)


@import_app.command("listenbrainz")
def import_listenbrainz(
    file: Path = typer.Argument(..., help="The export: a JSON array of listens or JSON lines."),
    profile: str | None = typer.Option(None, help="Profile to import into (default: default)."),
    as_json: bool = typer.Option(False, "--json", help="Print the import as JSON."),
) -> None:
    """Import a ListenBrainz export file, read in place (what POST /api/admin/import/listenbrainz does).

    Running it again on the same file while its import is unfinished continues that import.
    """
    from haunt_fm.pipeline.imports import service

    settings = get_settings()
    _setup_logging(settings)

    async def start(runtime: Any) -> Any:
        return await service.start_listenbrainz_file(sessions=runtime.sessions, path=file, profile=profile)

    _import(settings, start, as_json=as_json)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema to the latest version."""
    settings = get_settings()
    _setup_logging(settings)
    with database(settings, attach=True) as url:
        _upgrade(url)
    typer.echo("database schema is up to date")


from haunt_fm.cli import mcp as _mcp  # noqa: E402, F401  - registers `haunt-fm mcp`

if __name__ == "__main__":
    app()
