"""`haunt-fm import lastfm | listenbrainz` in real subprocesses against the test database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.discovery.support import LASTFM_KEY
from tests.fakes import FakeLastfm
from tests.imports.support import (
    BASE_UTS,
    assert_no_duplicated_listens,
    distinct_listens,
    listen_json,
    scalar,
    write_jsonl,
)
from tests.support.waiting import eventually_async

EXE = Path(sys.executable).parent / "haunt-fm"


def _env(pg_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAUNTFM_")}
    return env | {
        "HAUNTFM_DATABASE_URL": pg_url,
        "HAUNTFM_DATA_DIR": str(tmp_path / "cli-data"),
        "HAUNTFM_LOG_LEVEL": "WARNING",
        **extra,
    }


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(EXE), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def _interrupt_when(
    args: list[str],
    env: dict[str, str],
    sessions: async_sessionmaker[AsyncSession],
    *,
    imported: int,
    sig: int,
) -> tuple[int, str]:
    """Start the command, send `sig` once the import has stored `imported` listens; its exit code, stderr."""
    proc = await asyncio.create_subprocess_exec(
        str(EXE), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )

    async def far_enough() -> bool:
        assert proc.returncode is None, "the import command ended before it got that far"
        return bool(await scalar(sessions, "SELECT coalesce(max(imported), 0) FROM imports") >= imported)

    await eventually_async(far_enough, what=f"the import to store {imported} listens", every=0.02)
    proc.send_signal(sig)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return int(proc.returncode if proc.returncode is not None else -1), err.decode()


async def test_listenbrainz_file_with_progress_problems_and_json(
    db: async_sessionmaker[AsyncSession], pg_url: str, tmp_path: Path
) -> None:
    export = write_jsonl(
        tmp_path / "export.jsonl",
        [*distinct_listens(300), "{oops", listen_json(BASE_UTS - 10, "Artist 0", "Song 0")],
    )
    env = _env(pg_url, tmp_path)
    code, out, err = await _cli("import", "listenbrainz", str(export), env=env)
    assert code == 0, err
    assert "import 1: ListenBrainz export.jsonl → default" in err
    assert (
        f"{export.stat().st_size / 1024:.1f} KB of {export.stat().st_size / 1024:.1f} KB: 300 imported" in err
    )
    assert "import 1: done" in out
    assert "imported:    300" in out and "duplicates:  1 (already stored)" in out and "skipped:     1" in out
    assert "line 301: The line is not valid JSON" in out

    code, out, err = await _cli("import", "listenbrainz", str(export), "--json", env=env)
    assert code == 0, err
    again = json.loads(out)
    assert (again["import_id"], again["imported"], again["duplicates"], again["skipped"]) == (2, 0, 301, 1)

    code, _, err = await _cli("import", "listenbrainz", str(tmp_path / "missing.jsonl"), env=env)
    assert code == 1 and "There is no file" in err
    not_export = tmp_path / "notes.txt"
    not_export.write_text("hello\n")
    code, _, err = await _cli("import", "listenbrainz", str(not_export), "--profile", "default", env=env)
    assert code == 1 and "is not a ListenBrainz export" in err
    code, _, err = await _cli("import", "listenbrainz", str(export), "--profile", "ghost", env=env)
    assert code == 1 and "Profile 'ghost' does not exist" in err
    assert await scalar(db, "SELECT count(*) FROM listen_events") == 300


async def test_lastfm_with_errors_and_ctrl_c_then_the_same_command_continues(
    db: async_sessionmaker[AsyncSession], pg_url: str, tmp_path: Path, lastfm: FakeLastfm
) -> None:
    lastfm.add_user("rj", lastfm.generate_scrobbles(3000, newest_uts=BASE_UTS, spacing=200))
    lastfm.add_user("hidden", [], private=True)
    env = _env(pg_url, tmp_path, HAUNTFM_LASTFM_API_URL=lastfm.api_url)
    code, _, err = await _cli("import", "lastfm", "--user", "rj", env=env)
    assert code == 1 and "HAUNTFM_LASTFM_API_KEY" in err

    env |= {"HAUNTFM_LASTFM_API_KEY": LASTFM_KEY, "HAUNTFM_LASTFM_RATE_PER_SECOND": "5"}
    code, _, err = await _cli("import", "lastfm", "--user", "nobody-here", env=env)
    assert code == 1 and "Last.fm has no user called 'nobody-here'" in err
    code, _, err = await _cli("import", "lastfm", "--user", "hidden", env=env)
    assert code == 1 and "keeps their listening history private" in err

    args = ["import", "lastfm", "--user", "rj", "--since", "2000-01-01"]
    code, err = await _interrupt_when(args, env, db, imported=400, sig=signal.SIGINT)
    assert code == 1 and "import interrupted; it keeps its place" in err, err
    async with db() as session:
        row = (await session.execute(text("SELECT status, imported FROM imports"))).mappings().one()
    assert row["status"] == "running" and 400 <= row["imported"] < 3000
    assert await scalar(db, "SELECT lease_owner FROM jobs") is None

    code, out, err = await _cli(*args, "--json", env=env)
    assert code == 0, err
    assert "(resuming)" in err
    done = json.loads(out)
    assert (done["import_id"], done["status"], done["imported"], done["duplicates"]) == (1, "done", 3000, 0)
    assert done["since"].startswith("2000-01-01")
    assert await scalar(db, "SELECT count(*) FROM listen_events WHERE source = 'lastfm'") == 3000
    assert LASTFM_KEY not in out + err


async def test_a_killed_import_is_taken_over_once_its_lease_runs_out(
    db: async_sessionmaker[AsyncSession], pg_url: str, tmp_path: Path
) -> None:
    export = write_jsonl(tmp_path / "big.jsonl", distinct_listens(12_000, tracks=900))
    env = _env(pg_url, tmp_path, HAUNTFM_IMPORT_BATCH_SIZE="100")
    args = ["import", "listenbrainz", str(export)]
    code, _ = await _interrupt_when(args, env, db, imported=1000, sig=signal.SIGKILL)
    assert code == -signal.SIGKILL
    stored = await scalar(db, "SELECT count(*) FROM listen_events")
    assert stored == await scalar(db, "SELECT imported FROM imports") and 1000 <= stored < 12_000
    # The dead process still holds the job's lease; a minute later it runs out.
    assert await scalar(db, "SELECT lease_owner FROM jobs") is not None
    async with db() as session:
        await session.execute(text("UPDATE jobs SET lease_until = now() - interval '1 second'"))
        await session.commit()

    code, out, err = await _cli(*args, "--json", env=env)
    assert code == 0, err
    done = json.loads(out)
    assert (done["import_id"], done["status"], done["imported"], done["duplicates"]) == (1, "done", 12_000, 0)
    assert await scalar(db, "SELECT count(*) FROM listen_events") == 12_000
    await assert_no_duplicated_listens(db)
