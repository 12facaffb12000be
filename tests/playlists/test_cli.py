"""`haunt-fm playlist` run as a real process against the test database and the Home Assistant stand-in."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from tests.fakes import FakeHomeAssistant
from tests.playlists.support import E0, HA_TOKEN, STUDY, build_world
from tests.recommendations.support import Factory, StandInTextModel
from tests.support.env import clean_environ
from tests.support.text_worker import text_worker

EXE = str(Path(sys.executable).parent / "haunt-fm")


def _env(tmp_path: Path, pg_url: str, ha_url: str, token: str = HA_TOKEN) -> dict[str, str]:
    env = clean_environ()
    env.update(
        {
            "HAUNTFM_DATABASE_URL": pg_url,
            "HAUNTFM_DATA_DIR": str(tmp_path / "data"),
            "HAUNTFM_HA_URL": ha_url,
            "HAUNTFM_HA_TOKEN": token,
            "HAUNTFM_LOG_LEVEL": "WARNING",
            "HAUNTFM_VIBE_EMBED_TIMEOUT_SECONDS": "30",
            "COLUMNS": "200",
        }
    )
    return env


async def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [EXE, "playlist", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_plays_and_prints_a_table(
    db: Factory, pg_url: str, tmp_path: Path, ha: FakeHomeAssistant
) -> None:
    w = await build_world(db, known=4, new=10)
    args = ["--tracks", "5", "--known-pct", "40", "--speaker", STUDY, "--play"]
    result = await _run(args, _env(tmp_path, pg_url, ha.url), tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Playlist 1 for 'default': 2 known, 3 new" in out
    for header in ("Kind", "Artist", "Title", "Score"):
        assert header in out
    lines = [line for line in out.splitlines() if " N0 " in line or " K0 " in line]
    assert len(lines) == 2 and "Known Artist 0" in out and "New Artist 2" in out
    assert f"Playback on {STUDY}: played, 5 queued" in out
    calls = [c.data for c in ha.service_calls]
    assert [c["enqueue"] for c in calls] == ["replace", "add", "add", "add", "add"]
    assert [c["media_id"] for c in calls] == ["N0", "K0", "N1", "K1", "N2"]
    async with db() as s:
        row = (await s.execute(text("SELECT params, playback FROM playlists"))).one()
    assert row.params["total_tracks"] == 5 and row.params["speaker_entity"] == STUDY
    assert row.playback["status"] == "played"
    assert HA_TOKEN not in out + result.stderr
    assert w.known[0] in {int(x) for x in out.split() if x.isdigit()}


async def test_cli_vibe_goes_through_the_worker_queue(
    db: Factory, pg_url: str, tmp_path: Path, ha: FakeHomeAssistant
) -> None:
    await build_world(db, known=3, new=6)
    env = _env(tmp_path, pg_url, ha.url)
    # Stand in for `haunt-fm worker`: embed whatever the CLI asked for.
    model = StandInTextModel({"dreamy haze": E0})
    worker = await text_worker(db, model, tmp_path=tmp_path, pg_url=pg_url)
    task = asyncio.ensure_future(_run(["--tracks", "4", "--vibe", "Dreamy  Haze"], env, tmp_path))
    while not task.done():
        await worker.process_texts()
        await asyncio.sleep(0.05)
    result = task.result()
    assert result.returncode == 0, result.stderr
    assert model.calls == [["dreamy haze"]]
    assert "vibe 'Dreamy  Haze'" in result.stdout or "vibe 'Dreamy Haze'" in result.stdout
    assert "Playback on" not in result.stdout and ha.requests == []


async def test_cli_errors(db: Factory, pg_url: str, tmp_path: Path, ha: FakeHomeAssistant) -> None:
    await build_world(db, known=3, new=6)
    bad = await _run(["--known-pct", "150"], _env(tmp_path, pg_url, ha.url), tmp_path)
    assert bad.returncode == 2 and "--known-pct" in bad.stderr and "known_pct" not in bad.stderr
    no_speaker = await _run(["--play"], _env(tmp_path, pg_url, ha.url), tmp_path)
    assert no_speaker.returncode == 2 and "error: --play needs --speaker" in no_speaker.stderr
    unknown = await _run(
        ["--tracks", "3", "--speaker", "media_player.attic_2", "--play"],
        _env(tmp_path, pg_url, ha.url),
        tmp_path,
    )
    assert unknown.returncode == 1 and "Unknown speaker" in unknown.stderr
    # A rejected token: the playlist is printed and saved, playback failed (exit status 2).
    denied = await _run(
        ["--tracks", "3", "--speaker", STUDY, "--play"],
        _env(tmp_path, pg_url, ha.url, token="nope"),
        tmp_path,
    )
    assert denied.returncode == 2, denied.stderr
    assert "failed" in denied.stdout and "rejected the token" in denied.stdout
    async with db() as s:
        assert (await s.execute(text("SELECT count(*) FROM playlists"))).scalar_one() == 1
