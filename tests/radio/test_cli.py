"""`haunt-fm radio start|status|stop` as real processes against the test database and the Home
Assistant stand-in; a running `serve` keeps the radio the CLI started going."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.fakes import FakeHomeAssistant
from tests.playlists.support import HA_TOKEN, LIVING
from tests.playlists.test_cli import EXE, _env
from tests.radio.support import Listener, backdate, build_world, play_calls, radio_on, wait_until
from tests.recommendations.support import Factory


async def _radio(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [EXE, "radio", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


async def test_cli_starts_shows_and_stops_a_radio_that_serve_keeps_going(
    db: Factory, pg_url: str, tmp_path: Path, ha: FakeHomeAssistant, serve: Callable[..., str]
) -> None:
    await build_world(db)
    env = _env(tmp_path, pg_url, ha.url)
    result = await _radio(["start", "--speaker", LIVING, "--batch", "3", "--known-pct", "0"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Radio 1 on {LIVING} for 'default': on" in result.stdout
    assert f"Queued on {LIVING}: played, 3 of 3" in result.stdout
    calls = play_calls(ha, LIVING)
    assert [c["enqueue"] for c in calls] == ["replace", "add", "add"]
    for call in calls:
        assert call["media_id"] in result.stdout

    # `serve` reads the speaker's listens and adds the next batch.
    async with httpx.AsyncClient(
        base_url=serve(start_background=True, ha_url=ha.url, ha_token=HA_TOKEN), timeout=60
    ) as http:
        radio = await radio_on(http, LIVING)
        assert radio is not None
        listener = Listener(http, ha, LIVING, clock=await backdate(db, radio["radio_id"]))
        await listener.now_playing(after=1)
        await listener.next()
        await wait_until(lambda: _extended(http), what="the second batch")

    result = await _radio(["status"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    playing = listener.heard[-1][1]
    assert any(" playing " in line and playing in line for line in out.splitlines())
    assert "2 played, 0 skipped, 4 upcoming" in out

    result = await _radio(["status", "--json"], env, tmp_path)
    doc = json.loads(result.stdout)
    assert [r["radio_id"] for r in doc["radios"]] == [1] and doc["radios"][0]["active"] is True

    result = await _radio(["stop", "--speaker", LIVING, "--stop-playback"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Radio 1 on {LIVING} stopped (2 played, 0 skipped)." in result.stdout
    assert "The player is stopped." in result.stdout
    assert ha.players[LIVING].state == "idle"

    result = await _radio(["stop", "--speaker", LIVING], env, tmp_path)
    assert result.returncode == 1 and "No radio is playing on" in result.stderr
    result = await _radio(["status"], env, tmp_path)
    assert "ended (stopped)" in result.stdout and "Stopped on request." in result.stdout
    assert HA_TOKEN not in result.stdout + result.stderr


async def _extended(http: httpx.AsyncClient) -> bool:
    radio = await radio_on(http, LIVING)
    return bool(radio and len(radio["upcoming"]) >= 3 and all(t["sent"] for t in radio["upcoming"]))


async def test_cli_refuses_bad_options_without_touching_anything(
    db: Factory, pg_url: str, tmp_path: Path, ha: FakeHomeAssistant
) -> None:
    await build_world(db)
    env = _env(tmp_path, pg_url, ha.url)
    result = await _radio(["start", "--speaker", LIVING, "--batch", "2"], env, tmp_path)
    # Out of range is bad usage (exit 2), caught before anything runs.
    assert result.returncode == 2 and "'--batch'" in result.stderr
    assert "greater than or equal to 3" in result.stderr
    result = await _radio(["start", "--speaker", "kitchen"], env, tmp_path)
    assert result.returncode == 1 and "media player entity id" in result.stderr
    env.pop("HAUNTFM_HA_URL")
    result = await _radio(["start", "--speaker", LIVING], env, tmp_path)
    assert result.returncode == 1 and "HAUNTFM_HA_URL" in result.stderr
    assert ha.service_calls == []


async def test_remote_radio_starts_shows_and_stops_in_the_service(
    db: Factory, tmp_path: Path, ha: FakeHomeAssistant, serve: Callable[..., str]
) -> None:
    from tests.cli.support import NO_DATABASE, cli_env, run

    await build_world(db)
    token = "radio-cli-token-93aa"
    url = serve(ha_url=ha.url, ha_token=HA_TOKEN, api_token=token)
    # This machine has no database and no Home Assistant: the service has both.
    env = cli_env(
        HAUNTFM_URL=url,
        HAUNTFM_API_TOKEN=token,
        HAUNTFM_DATABASE_URL=NO_DATABASE,
        HAUNTFM_DATA_DIR=str(tmp_path / "x"),
    )
    started = await run("radio", "start", "--speaker", LIVING, "--batch", "3", "--known-pct", "0", env=env)
    assert started.code == 0, started.err
    assert f"Radio 1 on {LIVING} for 'default': on" in started.out
    assert f"Queued on {LIVING}: played, 3 of 3" in started.out
    assert [c["enqueue"] for c in play_calls(ha, LIVING)] == ["replace", "add", "add"]

    listed = await run("radio", "status", "--json", env=env)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        assert listed.json() == (await http.get("/api/radio")).json()
    assert [r["radio_id"] for r in listed.json()["radios"]] == [1]
    table = await run("radio", "status", env=env)
    assert "0 played, 0 skipped, 3 upcoming" in table.out

    stopped = await run("radio", "stop", "--speaker", LIVING, "--stop-playback", "--json", env=env)
    body = stopped.json()
    assert (body["radio_id"], body["active"], body["stop_playback"]["status"]) == (1, False, "stopped")
    again = await run("radio", "stop", "--speaker", LIVING, env=env)
    assert again.code == 1
    assert again.err == (
        f"error: No radio is playing on {LIVING}; `haunt-fm radio status` lists the radios.\n"
    )
    bad = await run("radio", "start", "--speaker", "kitchen", env=env)
    assert bad.code == 1 and bad.err.startswith("error: --speaker") and "media player entity id" in bad.err
    assert not (tmp_path / "x").exists()
