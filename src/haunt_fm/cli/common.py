"""What every command shares: the top-level options, logging, the database, output and errors.

Exit statuses: 0 done; 1 an error (the service refused or something failed; the message says
why); 2 bad usage (an unknown option, a value out of range, options that don't go together,
`--url` on a command that only runs locally), and `playlist` when playback was asked for and
failed (the playlist is saved all the same).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from haunt_fm.cli.wording import cli_words
from haunt_fm.config import Settings, get_settings

if TYPE_CHECKING:
    from rich.console import Console

    from haunt_fm.db.embedded import DataDirBusy, EmbeddedPostgres
    from haunt_fm.runtime import Runtime

log = logging.getLogger("haunt_fm.cli")

EXIT_ERROR = 1
EXIT_USAGE = 2

# Options several commands share, spelled the same everywhere.
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON (the HTTP API's document) instead of text.")
]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", "-p", metavar="NAME", help="Profile name (default: default).")
]
VibeOption = Annotated[
    str | None, typer.Option("--vibe", metavar="TEXT", help="Mood text, e.g. 'chill ambient lo-fi'.")
]
AlphaOption = Annotated[
    float,
    typer.Option(
        "--alpha",
        min=0.0,
        max=1.0,
        metavar="0..1",
        help="Taste weight against the vibe: 1 taste only, 0 vibe only.",
    ),
]


@dataclass
class CliState:
    """The top-level options (`haunt-fm --verbose --url URL <command>`)."""

    verbose: bool = False
    url: str | None = None


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliState) else CliState()


def settings() -> Settings:
    return get_settings()


def usage_error(ctx: typer.Context, message: str) -> typer.Exit:
    """Bad usage: the usage line and the message on stderr; raise the result (exit status 2)."""
    typer.echo(ctx.get_usage(), err=True)
    typer.echo(f"Try '{ctx.command_path} --help' for help.\n", err=True)
    typer.secho(f"error: {cli_words(message)}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=EXIT_USAGE)


def fail(message: str, *, code: int = EXIT_ERROR) -> typer.Exit:
    """Print `error: <message>` (in the CLI's words) on stderr; raise the result to end the command."""
    typer.secho(f"error: {cli_words(message)}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=code)


def remote_url(ctx: typer.Context) -> str | None:
    """The haunt-fm to talk to over HTTP: `--url`, else HAUNTFM_URL; None means in-process."""
    given = state(ctx).url
    url = given or settings().url
    if url is None:
        return None
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        source = "--url" if given else "HAUNTFM_URL"
        raise usage_error(
            ctx, f"{source} must be the http:// address of a running haunt-fm, e.g. http://nas.local:8321."
        )
    return url


def need_lastfm_key(remote: str | None, *, what: str) -> None:
    """In-process, `what` needs this machine's Last.fm key; remotely the service's own counts."""
    if remote is None and not settings().lastfm_configured:
        # (The services' own sentence ends "and restart haunt-fm": a command reads the key at once.)
        raise fail(
            f"{what} needs a Last.fm API key: set HAUNTFM_LASTFM_API_KEY (create one at "
            "https://www.last.fm/api/account/create)."
        )


def local_only(ctx: typer.Context, *, service: bool = False) -> None:
    """Refuse a remote service for a command without an API counterpart (it works on the database).

    `service` (serve, worker, mcp): HAUNTFM_URL from the environment is ignored with a warning, so a
    client setting left in a shared `.env` never keeps the service from starting.
    """
    command = ctx.command_path.removeprefix(ctx.find_root().info_name or "").strip()
    where = "it works on the database directly and has no HTTP API counterpart"
    if state(ctx).url:
        raise usage_error(
            ctx, f"`haunt-fm {command}` only runs on the machine with the database ({where}); drop --url."
        )
    url = settings().url
    if url is None:
        return
    if service:
        log.warning("HAUNTFM_URL is set (%s); `haunt-fm %s` runs here and ignores it", url, command)
        return
    raise usage_error(
        ctx,
        f"`haunt-fm {command}` only runs on the machine with the database ({where}), and HAUNTFM_URL "
        f"is set ({url}). Run it where the database is, or unset HAUNTFM_URL for it: "
        f"`HAUNTFM_URL= haunt-fm {command} ...`.",
    )


# --- logging ----------------------------------------------------------------------------------


def setup_logging(*, verbose: bool, level: str | None = None) -> None:
    """Commands log warnings only (`--verbose`: INFO); serve, worker and mcp pass HAUNTFM_LOG_LEVEL.

    Alembic announces itself at INFO on every start ("Context impl PostgresqlImpl", "Will
    assume transactional DDL"): shown with --verbose only.
    """
    wanted = (level or "WARNING").upper()
    if verbose and logging.getLevelName(wanted) > logging.INFO:
        wanted = "INFO"
    logging.basicConfig(
        level=wanted,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # httpx logs full request URLs at INFO, which would include the Last.fm api_key.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.INFO if verbose else logging.WARNING)
    # One line per plugin on every start, even verbose it says nothing useful.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from haunt_fm import logs

    # A repeated warning or error (a wrong key, an outage) is logged once, then counted.
    logs.install()


# --- the database -----------------------------------------------------------------------------


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def database(
    settings: Settings,
    *,
    attach: bool,
    attach_only: bool = False,
    owned: list[Any] | None = None,
    busy: Callable[[DataDirBusy], str] | None = None,
) -> Iterator[str]:
    """The database URL, starting the embedded server when HAUNTFM_DATABASE_URL is unset.

    `owned` receives the embedded server when this process started it (serve supervises it).
    `busy` says in the command's own words that another process owns the data directory.
    """
    from haunt_fm.db.embedded import DataDirBusy, EmbeddedDatabaseError, EmbeddedPostgres

    # SIGTERM stops a command as cleanly as Ctrl-C does (the embedded server stops, a worker
    # takes its row out of the status), whichever database it runs on.
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _raise_interrupt)
    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    server: EmbeddedPostgres = EmbeddedPostgres(settings.data_dir)
    try:
        url = server.start(attach=attach, attach_only=attach_only)
    except DataDirBusy as exc:
        raise fail(busy(exc) if busy else str(exc)) from None
    except EmbeddedDatabaseError as exc:
        raise fail(str(exc)) from None
    if server.owner:
        log.info("embedded PostgreSQL running (data: %s)", server.paths.root)
        if owned is not None:
            owned.append(server)
    try:
        yield url
    finally:
        if server.owner:
            log.info("stopping embedded PostgreSQL")
        server.stop()


def upgrade_schema(url: str) -> None:
    """Bring the schema up to date (every command that touches the database does, as serve does)."""
    from alembic.util.exc import CommandError

    from haunt_fm.db.migrate import PgvectorMissing, upgrade
    from haunt_fm.db.session import redact_url

    try:
        upgrade(url)
    except (PgvectorMissing, ValueError) as exc:
        raise fail(str(exc)) from None
    except CommandError as exc:
        # e.g. a database restored from a newer haunt-fm: "Can't locate revision identified by ..."
        raise fail(f"cannot upgrade the schema at {redact_url(url)}: {exc}") from None
    except (OSError, ConnectionError) as exc:
        raise fail(f"cannot reach PostgreSQL at {redact_url(url)}: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("asyncpg", "sqlalchemy")):
            raise fail(f"database error at {redact_url(url)}: {type(exc).__name__}: {exc}") from None
        raise


def run_on_runtime(
    current: Settings,
    work: Callable[[Settings, Runtime], Coroutine[Any, Any, None]],
    *,
    stopped: str,
    attach_only: bool = False,
) -> None:
    """A long-running process (worker, mcp): `work` on a runtime against the up-to-date database
    until it ends, or until Ctrl-C / SIGTERM, after which `stopped` goes to stderr."""
    import asyncio

    from haunt_fm.runtime import open_runtime

    async def main(url: str) -> None:
        async with open_runtime(current, database_url=url, pool_size=3) as runtime:
            await work(current, runtime)

    with database(current, attach=True, attach_only=attach_only) as url:
        upgrade_schema(url)
        try:
            asyncio.run(main(url))
        except KeyboardInterrupt:
            typer.echo(stopped, err=True)


# --- output -----------------------------------------------------------------------------------


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def console() -> Console:
    from rich.console import Console

    return Console()


def say(text: str) -> None:
    """One plain line on stdout (no markup, no highlighting: titles and artists print as they are)."""
    console().print(text, markup=False, highlight=False, soft_wrap=True)
