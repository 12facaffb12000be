"""Every CLI command stops on an unusable setting with one line and exit status 2, and the
shipped `.env.example`, copied as-is to `.env`, starts cleanly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from haunt_fm.cli import app
from haunt_fm.config import ENV_FILE_VARIABLE, get_settings
from tests.support.env import clean_environ

EXE = str(Path(sys.executable).parent / "haunt-fm")
ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def _commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf command of the CLI with its path (`("db", "upgrade")`), new ones included."""
    command = command or typer.main.get_command(app)
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield path, command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


def _required_arguments(command: Any) -> list[str]:
    """Plausible values for required parameters, so the command gets as far as its settings."""
    values = []
    for param in command.params:
        if param.required:
            choices = getattr(getattr(param, "type", None), "choices", None)
            value = str(next(iter(choices))) if choices else "1"
            values += [value] if param.param_type_name == "argument" else [param.opts[0], value]
    return values


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


COMMANDS = sorted(_commands())


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
@pytest.mark.parametrize(
    ("name", "value"), [("HAUNTFM_LOG_LEVEL", "verbose"), ("HAUNTFM_TORCH_THREADS", "abc")]
)
def test_every_command_stops_on_an_invalid_setting_with_one_line(
    path: tuple[str, ...], command: Any, name: str, value: str, fresh_settings: None
) -> None:
    result = CliRunner().invoke(app, [*path, *_required_arguments(command)], env={name: value})
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {name} must be ")
    assert repr(value) in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _run(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_an_invalid_value_in_dot_env_stops_the_real_command_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HAUNTFM_TORCH_THREADS=abc\n", encoding="utf-8")
    env = clean_environ()
    del env[ENV_FILE_VARIABLE]  # the default: `.env` in the working directory
    out = _run(["db", "upgrade"], cwd=tmp_path, env=env)
    assert out.returncode == 2
    assert out.stderr == (
        "error: HAUNTFM_TORCH_THREADS must be a whole number of at least 1, or blank for the default; "
        "got 'abc'.\n"
    )
    assert "Traceback" not in out.stdout + out.stderr


def test_a_missing_env_file_named_by_the_variable_is_one_line(tmp_path: Path) -> None:
    out = _run(["worker"], cwd=tmp_path, env=clean_environ(**{ENV_FILE_VARIABLE: str(tmp_path / "nope.env")}))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "HAUNTFM_ENV_FILE" in out.stderr and "nope.env" in out.stderr


def test_env_example_copied_as_is_starts_cleanly(tmp_path: Path, pg_url: str) -> None:
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    env = clean_environ(HAUNTFM_DATABASE_URL=pg_url)
    del env[ENV_FILE_VARIABLE]
    out = _run(["db", "upgrade"], cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout
