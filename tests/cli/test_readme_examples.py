"""The README's command-line examples run as written, top to bottom, on a fresh install: next to a
running `serve` on the embedded database, and from "another machine" against it with its token."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.support import cli_env
from tests.conftest import reachable
from tests.support.serve_process import ServeProcess

README = Path(__file__).resolve().parents[2] / "README.md"
TOKEN = "readme-token-5c1e"


def _blocks() -> list[str]:
    section = README.read_text(encoding="utf-8").split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.DOTALL)


def _bash(script: str, *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
async def test_readme_command_line_examples_run_as_written(tmp_path: Path) -> None:
    local_block, remote_block = _blocks()
    work = reachable(tmp_path)
    # The commands as a user types them: `haunt-fm` on the PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = cli_env(HAUNTFM_DATA_DIR=str(work / "data"), PATH=path)
    with ServeProcess(work, data_dir=work / "data", HAUNTFM_API_TOKEN=TOKEN) as serve:
        for line in local_block.strip().splitlines():
            done = await asyncio.to_thread(_bash, line, env=env, cwd=work)
            if "# needs" in line:
                # Something a fresh install doesn't have yet: one sentence saying what, exit 1.
                assert done.returncode in (0, 1), (line, done.stderr)
                assert done.returncode == 0 or done.stderr.startswith("error: "), (line, done.stderr)
            else:
                assert done.returncode == 0, (line, done.stderr)
            assert "Traceback" not in done.stderr, (line, done.stderr)
        assert (work / "haunt-fm.dump").stat().st_size > 0

        script = "set -euo pipefail\n" + remote_block.replace("http://nas.local:8321", serve.url).replace(
            "the-token-the-service-has", TOKEN
        )
        # Another machine: no database, no data directory of its own.
        laptop = cli_env(PATH=path, HAUNTFM_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
        done = await asyncio.to_thread(_bash, script, env=laptop, cwd=work)
        assert done.returncode == 0, done.stderr
        assert "No listens yet." in done.stdout and '"name": "antialias"' in done.stdout
