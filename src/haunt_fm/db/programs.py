"""The wheel's PostgreSQL programs (psql, pg_dump, pg_restore) against a haunt-fm database.

They run as the current user: over the embedded server's Unix socket (trust
authentication, user `postgres`; root can reach the socket directory) or against
HAUNTFM_DATABASE_URL. The password never appears on a command line (where `ps` would show
it): libpq reads it from PGPASSWORD.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from haunt_fm.db.embedded import pg_program
from haunt_fm.db.session import to_libpq_dsn

# Other client sessions on the same database (the serve's pool, workers, a psql left open).
_OTHER_SESSIONS_SQL = """
SELECT coalesce(nullif(application_name, ''), 'a client') || ' from ' ||
       coalesce(host(client_addr), 'the local socket') || ' (pid ' || pid || ')'
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
ORDER BY backend_start
"""


class ProgramError(RuntimeError):
    """A PostgreSQL program failed; the message carries the end of what it said."""


@dataclass(frozen=True, slots=True)
class Target:
    """How libpq programs reach a database: a conninfo string without the password, and the environment."""

    conninfo: str
    env: dict[str, str]


def target(url: str) -> Target:
    """The libpq conninfo (password moved to PGPASSWORD) for a postgresql:// URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(to_libpq_dsn(url))
    words: dict[str, str] = {}
    if parsed.host:
        words["host"] = parsed.host
    if parsed.port:
        words["port"] = str(parsed.port)
    if parsed.username:
        words["user"] = parsed.username
    if parsed.database:
        words["dbname"] = parsed.database
    for key, value in parsed.query.items():
        words[key] = value if isinstance(value, str) else value[-1]
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    conninfo = " ".join(f"{key}='{_quote(value)}'" for key, value in words.items())
    return Target(conninfo, env)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def psql_command(url: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The psql command line (and environment) for an interactive shell on the database."""
    where = target(url)
    return [str(pg_program("psql")), "--dbname", where.conninfo, *args], where.env


def _run(argv: list[str], *, env: dict[str, str], timeout: float | None = None) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ProgramError(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip()
        raise ProgramError(f"{Path(argv[0]).name} failed (exit {result.returncode}): {said[-2000:]}")
    return result.stdout


def other_sessions(url: str) -> list[str]:
    """Other client sessions connected to the database, described for a person."""
    where = target(url)
    out = _run(
        [
            str(pg_program("psql")),
            "--dbname",
            where.conninfo,
            "-X",
            "-q",
            "-t",
            "-A",
            "-c",
            _OTHER_SESSIONS_SQL,
        ],
        env=where.env,
        timeout=60,
    )
    return [line for line in out.splitlines() if line.strip()]


def dump(url: str, path: Path) -> int:
    """Write the database to `path` (pg_dump custom format); returns its size in bytes.

    Written beside `path` first and renamed into place: a failed dump never leaves a file that
    looks like a backup, nor spoils an earlier one of the same name.
    """
    where = target(url)
    partial = path.with_name(path.name + ".partial")
    try:
        _run(
            [
                str(pg_program("pg_dump")),
                "--format=custom",
                "--file",
                str(partial),
                "--dbname",
                where.conninfo,
            ],
            env=where.env,
        )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path.stat().st_size


def check_archive(path: Path) -> None:
    """Raise ProgramError unless `path` is a pg_dump custom-format archive pg_restore can read."""
    _run([str(pg_program("pg_restore")), "--list", str(path)], env=dict(os.environ), timeout=300)


def restore(url: str, path: Path) -> None:
    """Replace the database's contents with the archive at `path`, all or nothing.

    One transaction (`--single-transaction`): any error rolls everything back and the old data
    stays. `--clean --if-exists` drops what the archive holds before creating it; owners and
    grants are left out, so a backup of the embedded database restores into a server where
    the user is someone else.
    """
    where = target(url)
    _run(
        [
            str(pg_program("pg_restore")),
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            "--dbname",
            where.conninfo,
            str(path),
        ],
        env=where.env,
    )
