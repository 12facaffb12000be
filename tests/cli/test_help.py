"""What `--help`, `--version` and `--verbose` show: flags as flags, `--json` everywhere it means
something, and no migration chatter unless asked for."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from haunt_fm import __version__
from haunt_fm.cli import app
from tests.cli.support import cli_env, run

# Commands that print no result of their own (a server, a worker, the MCP stdio server, psql).
NO_RESULT = {"serve", "worker", "mcp", "db shell"}


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}".strip()
        if hasattr(command, "commands"):
            yield from _commands(command, path)
        else:
            yield path, command


COMMANDS = dict(_commands(typer.main.get_command(app)))


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """The commands configure logging for their process; in-process here, put it back afterwards
    (CliRunner's stderr is closed once a command returns)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    loggers = ("httpx", "httpcore", "alembic", "alembic.runtime.plugins")
    named = {name: logging.getLogger(name).level for name in loggers}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in named.items():
        logging.getLogger(name).setLevel(saved)


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_daily_command_is_there() -> None:
    for path in (
        "status",
        "recent",
        "recommend",
        "profiles list",
        "profiles create",
        "profiles delete",
        "profiles speakers",
        "feedback",
        "taste rebuild",
        "retry-failed",
        "db shell",
        "db backup",
        "db restore",
        "db upgrade",
        "serve",
        "worker",
        "discover",
        "playlist",
    ):
        assert path in COMMANDS, path


@pytest.mark.parametrize("path", ["", *COMMANDS])
def test_flags_are_shown_as_flags(path: str) -> None:
    text = _help(*path.split())
    assert "<bool>" not in text
    params = COMMANDS[path].params if path else typer.main.get_command(app).params
    flags = [p for p in params if getattr(p, "is_flag", False)]
    for flag in flags:
        long = next(o for o in flag.opts if o.startswith("--"))
        # The option, then at least two spaces, then its help: no value placeholder in between.
        assert re.search(rf"^\s+(-\w, )?{long}\s{{2,}}\S", text, re.MULTILINE), (long, text)


@pytest.mark.parametrize("path", [p for p in COMMANDS if p not in NO_RESULT])
def test_every_command_with_a_result_has_json(path: str) -> None:
    assert re.search(r"^\s+--json\s{2,}Print the result as JSON", _help(*path.split()), re.MULTILINE)


def test_top_level_help_names_the_options_and_exit_statuses() -> None:
    text = _help()
    for needle in ("--url URL", "HAUNTFM_URL", "HAUNTFM_API_TOKEN", "--verbose", "--version", "2 bad usage"):
        assert needle in text, needle


async def test_version(tmp_path: Path) -> None:
    out = await run("--version", env=cli_env(), cwd=tmp_path)
    assert (out.code, out.out, out.err) == (0, f"haunt-fm {__version__}\n", "")


async def test_no_alembic_lines_without_verbose(pg_url: str, tmp_path: Path) -> None:
    env = cli_env(HAUNTFM_DATABASE_URL=pg_url)
    quiet = await run("db", "upgrade", env=env, cwd=tmp_path)
    assert (quiet.code, quiet.out, quiet.err) == (0, "database schema is up to date\n", "")
    status = await run("status", "--json", env=env, cwd=tmp_path)
    assert status.code == 0 and status.err == ""
    loud = await run("--verbose", "db", "upgrade", env=env, cwd=tmp_path)
    assert loud.code == 0
    assert "alembic.runtime.migration: Context impl PostgresqlImpl." in loud.err
