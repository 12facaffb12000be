"""`haunt-fm discover` in a real subprocess against the test database and the Last.fm stand-in."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.discovery.support import LASTFM_KEY, listen, rows
from tests.fakes import FakeLastfm
from tests.support.env import clean_environ

EXE = Path(sys.executable).parent / "haunt-fm"


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(EXE), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_cli_discover_prints_progress_and_results(
    serve: Callable[..., str],
    db: async_sessionmaker[AsyncSession],
    pg_url: str,
    tmp_path: Path,
    lastfm: FakeLastfm,
) -> None:
    lastfm.set_similar(
        "Radiohead", "Karma Police", [("A", "One"), ("A", "Two"), ("A", "Three"), ("Shared", "Song")]
    )
    lastfm.set_similar(
        "Portishead", "Roads", [("B", "One"), ("B", "Two"), ("B", "Three"), ("Shared", "Song")]
    )
    async with httpx.AsyncClient(base_url=serve(), timeout=30) as http:
        await listen(http, "Radiohead", "Karma Police")
        await listen(http, "Portishead", "Roads", minutes=1)
    env = clean_environ()
    env |= {
        "HAUNTFM_DATABASE_URL": pg_url,
        "HAUNTFM_DATA_DIR": str(tmp_path / "cli-data"),
        "HAUNTFM_LASTFM_API_URL": lastfm.api_url,
        "HAUNTFM_LOG_LEVEL": "WARNING",
    }

    code, out, err = await _cli("discover", env=env)
    assert code == 1 and "HAUNTFM_LASTFM_API_KEY" in err

    env["HAUNTFM_LASTFM_API_KEY"] = LASTFM_KEY
    code, out, err = await _cli("discover", "--limit", "4", env=env)
    assert code == 0, err
    assert "2 seed(s) to expand" in err
    assert "/2] Portishead - Roads: 4 similar" in err and "/2] Radiohead - Karma Police: 4 similar" in err
    assert "seeds expanded:          2" in out and "candidates new:          7" in out
    assert LASTFM_KEY not in out + err
    [count] = await rows(db, "SELECT count(*) AS n FROM track_similarities")
    assert count["n"] == 8

    code, out, err = await _cli(
        "discover", "--json", "--force", "--max-seeds", "1", "--profile", "default", env=env
    )
    assert code == 0, err
    result = json.loads(out)
    assert (result["seeds"], result["seeds_remaining"], result["candidates_new"]) == (1, 1, 0)
    assert result["candidates_seen"] == 4 and result["errors"] == []

    lastfm.valid_keys.clear()
    code, out, err = await _cli("discover", "--force", env=env)
    assert code == 1 and "rejected the API key" in err and "HAUNTFM_LASTFM_API_KEY" in err


async def test_cli_discover_on_a_remote_service(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession], tmp_path: Path, lastfm: FakeLastfm
) -> None:
    """With --url the service runs discovery (its own key); the CLI needs no key and no database."""
    from tests.cli.support import NO_DATABASE, cli_env, run

    lastfm.set_similar("Radiohead", "Karma Police", [("A", "One"), ("A", "Two"), ("A", "Three")])
    url = serve(lastfm_api_key=LASTFM_KEY, lastfm_api_url=lastfm.api_url, api_token="tok")
    async with httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": "Bearer tok"}) as http:
        await listen(http, "Radiohead", "Karma Police")
    env = cli_env(HAUNTFM_API_TOKEN="tok", HAUNTFM_DATABASE_URL=NO_DATABASE)

    done = await run("--url", url, "discover", "--limit", "3", "--json", env=env, cwd=tmp_path)
    result = done.json()
    assert (result["seeds"], result["candidates_new"], result["preview_lookups_queued"]) == (1, 3, 3)
    assert f"discovering on {url}" in done.err
    assert LASTFM_KEY not in done.out + done.err

    again = await run("--url", url, "discover", env=env, cwd=tmp_path)
    assert again.code == 0 and "seeds skipped:           1" in again.out, again.err

    keyless = serve(api_token="tok")
    refused = await run("--url", keyless, "discover", env=env, cwd=tmp_path)
    assert refused.code == 1 and "HAUNTFM_LASTFM_API_KEY" in refused.err
