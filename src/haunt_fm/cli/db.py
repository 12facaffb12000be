"""`haunt-fm db upgrade|shell|backup|restore`: the database itself (local only, no API counterpart).

On the embedded database, `upgrade`, `shell` and `backup` attach to the server of a running
`serve`, or start it for as long as they run. `restore` replaces everything, so it needs the
database to itself: it refuses while a `serve` owns the data directory (stop it first), and
on HAUNTFM_DATABASE_URL while other sessions are connected (unless --force). It runs in one
transaction (a failed restore changes nothing) and then upgrades the schema, so a backup
made by an older haunt-fm comes back current.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from haunt_fm.cli.common import (
    database,
    fail,
    local_only,
    print_json,
    say,
    settings,
    upgrade_schema,
    usage_error,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

if TYPE_CHECKING:
    from haunt_fm.db.embedded import DataDirBusy

db_app = typer.Typer(
    help="The database: schema upgrade, a psql shell, backup and restore.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")


def _where(url: str) -> str:
    from haunt_fm.db.session import redact_url

    return redact_url(url)


@db_app.command("upgrade")
def upgrade(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Create or upgrade the database schema to the latest version."""
    local_only(ctx)
    with database(settings(), attach=True) as url:
        upgrade_schema(url)
    if as_json:
        print_json({"database": _where(url), "schema": "up to date"})
    else:
        say("database schema is up to date")


@db_app.command("shell", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def shell(ctx: typer.Context) -> None:
    """psql on haunt-fm's database (the embedded one, or HAUNTFM_DATABASE_URL).

    Arguments after the command go to psql, e.g.
    `haunt-fm db shell -c 'SELECT count(*) FROM tracks'`; SQL on stdin works too.
    The exit status is psql's.
    """
    from haunt_fm.db.programs import psql_command

    local_only(ctx)
    with database(settings(), attach=True) as url:
        argv, env = psql_command(url, list(ctx.args))
        # Ctrl-C belongs to psql (it cancels the running query), not to us.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            code = subprocess.call(argv, env=env)
        finally:
            signal.signal(signal.SIGINT, previous)
    raise typer.Exit(code=code)


@db_app.command("backup")
def backup(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", dir_okay=False, help="Where to write the backup.", show_default=False),
    ],
    as_json: JsonOption = False,
) -> None:
    """Write the whole database to FILE (pg_dump's custom format); serve may keep running."""
    from haunt_fm.db.programs import ProgramError, dump

    local_only(ctx)
    file = file.expanduser().absolute()
    if not file.parent.is_dir():
        raise fail(f"{file.parent} is not a directory; create it first.")
    with database(settings(), attach=True) as url:
        try:
            size = dump(url, file)
        except ProgramError as exc:
            raise fail(f"the backup failed, nothing was written to {file}: {exc}") from None
    if as_json:
        print_json({"file": str(file), "bytes": size, "database": _where(url)})
    else:
        say(f"backup of {_where(url)} written to {file} ({size:,} bytes)")


@db_app.command("restore")
def restore(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            exists=True,
            dir_okay=False,
            readable=True,
            help="A backup written by `haunt-fm db backup`.",
            show_default=False,
        ),
    ],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Don't ask before replacing the database.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Restore even while other sessions use HAUNTFM_DATABASE_URL (restart them afterwards).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Replace everything in the database with FILE; stop `serve` first (see `db --help`)."""
    from haunt_fm.db.programs import ProgramError, check_archive, other_sessions
    from haunt_fm.db.programs import restore as pg_restore

    local_only(ctx)
    file = file.expanduser().absolute()
    try:
        check_archive(file)
    except ProgramError as exc:
        raise fail(
            f"{file} is not a backup written by `haunt-fm db backup` (pg_dump custom format): {exc}"
        ) from None
    current = settings()
    if not yes:
        if not sys.stdin.isatty():
            raise usage_error(ctx, "restore replaces everything in the database: pass --yes to go ahead.")
        target = (
            "HAUNTFM_DATABASE_URL" if current.database_url else f"the embedded database in {current.data_dir}"
        )
        typer.confirm(f"Replace everything in {target} with {file}?", abort=True)

    def busy(exc: DataDirBusy) -> str:
        return (
            f"`haunt-fm db restore` replaces the whole database, so nothing may use it meanwhile, and "
            f"haunt-fm (pid {exc.owner_pid or '?'}) is running on {current.data_dir}. Stop `haunt-fm serve` "
            "first; restore starts the embedded database by itself."
        )

    with database(current, attach=False, busy=busy) as url:
        try:
            others = other_sessions(url)
        except ProgramError as exc:
            raise fail(f"cannot reach the database at {_where(url)}: {exc}") from None
        if others and not force:
            raise fail(
                f"{len(others)} other session(s) are connected to {_where(url)}: {'; '.join(others[:5])}. "
                "Stop `haunt-fm serve` and the workers that use it, then restore (or pass --force and "
                "restart them afterwards)."
            )
        try:
            pg_restore(url, file)
        except ProgramError as exc:
            raise fail(f"the restore failed and changed nothing: {exc}") from None
        upgrade_schema(url)
    if as_json:
        print_json({"file": str(file), "database": _where(url), "schema": "up to date"})
    else:
        say(f"restored {file} into {_where(url)}; the schema is up to date")
