"""Running `haunt-fm` as a user does: a real process, configured only by the environment we give it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.env import clean_environ

EXE = str(Path(sys.executable).parent / "haunt-fm")
# Where a remote-mode command would find a database if it wrongly looked for one: nothing listens.
NO_DATABASE = "postgresql://nobody:pw@127.0.0.1:1/none"


def cli_env(**extra: str) -> dict[str, str]:
    """The caller's environment without HAUNTFM_ settings or env file, plus the app under test's settings."""
    env = clean_environ()
    env.update(
        {
            "HAUNTFM_EMBEDDING_WORKER_ENABLED": "false",
            "HAUNTFM_PREVIEW_WORKER_ENABLED": "false",
            "COLUMNS": "200",
        }
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class Mode:
    """Where the commands run: in-process on the test database, or over HTTP against a live app."""

    name: str
    env: dict[str, str]
    # Not the repository: a developer's `.env` there must not reach the command.
    cwd: Path

    async def run(self, *args: str, stdin: str | None = None) -> Result:
        return await run(*args, env=self.env, stdin=stdin, cwd=self.cwd)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)


async def run(*args: str, env: dict[str, str], stdin: str | None = None, cwd: Path | None = None) -> Result:
    done = await asyncio.to_thread(
        subprocess.run,
        [EXE, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )
    return Result(done.returncode, done.stdout, done.stderr)
