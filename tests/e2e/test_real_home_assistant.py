"""End to end with a real Home Assistant core: the shipped package installed as the README says,
players driven like Music Assistant's, a live `haunt-fm serve` — and the listens a person would
count, on the right profile, including those made while haunt-fm was down or refused the token.

The core (2024.3.3) is built once per machine (tests/ha_peer); deselect with -m "not real_ha".
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ha_peer.peer import RealHomeAssistant, ensure_built, free_port
from tests.support.waiting import eventually_async

pytestmark = [pytest.mark.real_ha, pytest.mark.slow]

EXE = str(Path(sys.executable).parent / "haunt-fm")
API_TOKEN = "e2e-api-token"
STUDY = "media_player.study_speaker_2"
KIDS = "media_player.kids_room_speaker_2"
DINING = "media_player.dining_room_speaker_2"
KITCHEN = "media_player.kitchen_stereo_2"
HOUSE = "media_player.whole_house_2"
NAMES = {
    STUDY: "Study speaker",
    KIDS: "Kids Room speaker",
    DINING: "Dining Room speaker",
    KITCHEN: "Kitchen stereo",
    HOUSE: "Whole House",
}


class HauntFm:
    """`haunt-fm serve` as a process on a fixed port, stopped and started like a real one."""

    def __init__(self, pg_url: str, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pg_url = pg_url
        self.data_dir = data_dir
        self.log = data_dir / "serve.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, **settings: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HAUNTFM_")}
        env |= {
            "HAUNTFM_DATABASE_URL": self.pg_url,
            "HAUNTFM_DATA_DIR": str(self.data_dir),
            "HAUNTFM_EMBEDDING_WORKER_ENABLED": "false",
            "HAUNTFM_PREVIEW_WORKER_ENABLED": "false",
            "HAUNTFM_LOG_LEVEL": "INFO",
            **{f"HAUNTFM_{k.upper()}": v for k, v in settings.items()},
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # kept open for the process's life
        self._proc = subprocess.Popen(
            [EXE, "serve", "--host", "127.0.0.1", "--port", str(self.port)], env=env, stdout=out, stderr=out
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self._proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("haunt-fm did not start:\n" + self.log.read_text())

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            self._proc.wait(timeout=60)
        self._proc = None


@pytest.fixture(scope="session")
def ha_venv() -> Path:
    return ensure_built()


@pytest.fixture
def haunt(db: Any, pg_url: str, tmp_path: Path) -> Iterator[HauntFm]:
    server = HauntFm(pg_url, tmp_path / "haunt-fm")
    yield server
    server.stop()


@pytest.fixture
def home(ha_venv: Path, tmp_path: Path, haunt: HauntFm) -> Iterator[RealHomeAssistant]:
    with RealHomeAssistant(ha_venv, tmp_path / "ha") as core:
        core.install_package(
            webhook_url=f"{haunt.url}/api/history/webhook", authorization=f"Bearer {API_TOKEN}"
        )
        core.start()
        yield core


@pytest.fixture
async def api(haunt: HauntFm) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=haunt.url, timeout=30) as http:
        http.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield http


def music(
    player: str, title: str, artist: str = "Sigur Rós", *, duration: float = 300, **extra: Any
) -> dict[str, Any]:
    """A Music Assistant player's attributes while it plays a track (None values left out)."""
    return {
        "friendly_name": NAMES[player],
        "app_id": "music_assistant",
        "mass_player_type": "group" if player == HOUSE else "player",
        "group_members": [],
        "volume_level": 0.3,
        "media_content_type": "music",
        "media_title": title,
        "media_artist": artist,
        "media_album_name": "Takk...",
        "media_content_id": f"apple_music://track/{sum(map(ord, title + artist)) * 7919}",
        "media_duration": duration,
        **extra,
    }


def quiet(player: str) -> dict[str, Any]:
    return {"friendly_name": NAMES[player], "app_id": "music_assistant", "group_members": []}


async def automation_done(home: RealHomeAssistant, since: datetime, *, within: float = 30) -> None:
    """Wait until the package's automation ran after `since` and no run is still in flight."""

    async def done() -> bool:
        states = await home.get("/api/states")
        (auto,) = [s for s in states if s["attributes"].get("id") == "haunt_fm_log_music_play"]
        last = auto["attributes"].get("last_triggered")
        return bool(
            last and datetime.fromisoformat(last) >= since and auto["attributes"].get("current", 0) == 0
        )

    await eventually_async(done, what="the automation to run", seconds=within, every=0.2)


async def listens(api: httpx.AsyncClient) -> list[tuple[str, str, str, str]]:
    """(title, speaker entity, profile, source) of every listen, oldest first."""
    events = (await api.get("/api/history/recent", params={"limit": 500})).json()["events"]
    return [(e["title"], e["speaker_entity"], e["profile"], e["source"]) for e in reversed(events)]


async def until_listens(
    api: httpx.AsyncClient, count: int, *, within: float = 60
) -> list[tuple[str, str, str, str]]:

    async def enough() -> list[tuple[str, str, str, str]] | None:
        found = await listens(api)
        return found if len(found) >= count else None

    return await eventually_async(enough, what=f"{count} listens", seconds=within, every=0.5)


async def play(home: RealHomeAssistant, player: str, state: str, attributes: dict[str, Any]) -> datetime:
    return await home.set_state(player, state, attributes)


async def test_a_household_evening_through_home_assistant(
    home: RealHomeAssistant, haunt: HauntFm, api: httpx.AsyncClient
) -> None:
    haunt.start(api_token=API_TOKEN, ha_url=home.url, ha_token=home.token)
    for profile, speakers in {
        "parents": [STUDY, HOUSE],
        "kid": [KIDS],
        "guest": [DINING],
        "cook": [KITCHEN],
    }.items():
        assert (await api.post("/api/profiles", json={"name": profile})).status_code == 201
        assert (
            await api.put(f"/api/profiles/{profile}/speakers", json={"speakers": speakers})
        ).status_code == 200
    for player in NAMES:
        await play(home, player, "off", quiet(player))
    expected: list[tuple[str, str, str, str]] = []

    async def expect(*new: tuple[str, str, str]) -> None:
        expected.extend((title, player, profile, "webhook") for title, player, profile in new)
        assert await listens(api) == expected

    # The kitchen starts a long track (it reconnects later).
    kitchen_started = await play(home, KITCHEN, "playing", music(KITCHEN, "Kitchen Song", duration=400))
    await automation_done(home, kitchen_started)
    await expect(("Kitchen Song", KITCHEN, "cook"))

    # off -> playing, then a track change.
    await automation_done(home, await play(home, STUDY, "playing", music(STUDY, "Glósóli")))
    await automation_done(home, await play(home, STUDY, "playing", music(STUDY, "Hoppípolla")))
    await expect(("Glósóli", STUDY, "parents"), ("Hoppípolla", STUDY, "parents"))

    # pause -> resume: sent, and not a new listen.
    await play(home, STUDY, "paused", music(STUDY, "Hoppípolla"))
    await automation_done(home, await play(home, STUDY, "playing", music(STUDY, "Hoppípolla")))
    await expect()

    # pause -> next (while paused) -> play: the new track is a listen.
    await play(home, STUDY, "paused", music(STUDY, "Hoppípolla"))
    await play(home, STUDY, "paused", music(STUDY, "Sæglópur"))
    await automation_done(home, await play(home, STUDY, "playing", music(STUDY, "Sæglópur")))
    await expect(("Sæglópur", STUDY, "parents"))

    # The whole house plays, members mapped to the kid and a guest: the parents' listen, once.
    members = [KIDS, DINING]
    group = {"group_members": members}
    # A member first, then the group, then the other member.
    await play(home, KIDS, "playing", music(KIDS, "Hafssól"))
    await play(home, HOUSE, "playing", music(HOUSE, "Hafssól", **group))
    await automation_done(home, await play(home, DINING, "playing", music(DINING, "Hafssól")))
    # The group first, then its members.
    await play(home, HOUSE, "playing", music(HOUSE, "Svo hljótt", **group))
    await play(home, KIDS, "playing", music(KIDS, "Svo hljótt"))
    await automation_done(home, await play(home, DINING, "playing", music(DINING, "Svo hljótt")))
    # All at once.
    changed = await asyncio.gather(
        *(
            play(home, p, "playing", music(p, "Ára bátur", **(group if p == HOUSE else {})))
            for p in [*members, HOUSE]
        )
    )
    await automation_done(home, max(changed))
    await expect(*((title, HOUSE, "parents") for title in ("Hafssól", "Svo hljótt", "Ára bátur")))
    for player in (HOUSE, *members):
        await play(
            home, player, "idle", quiet(player) | ({"group_members": members} if player == HOUSE else {})
        )

    # Awkward optional fields: a 25-hour duration, a signed URL as content id, a huge album.
    signed = "https://cdn.example/stream.m4a?X-Amz-Signature=" + "f" * 2100
    awkward = music(STUDY, "Gong", duration=90000, media_content_id=signed, media_album_name="A" * 1500)
    await automation_done(home, await play(home, STUDY, "playing", awkward))
    await automation_done(home, await play(home, KIDS, "playing", music(KIDS, "1999", "Prince", duration=-1)))
    await expect(("Gong", STUDY, "parents"), ("1999", KIDS, "kid"))
    gong = (await api.get("/api/history/recent", params={"limit": 2})).json()["events"][1]
    assert (gong["media_content_id"], gong["duration_s"], len(gong["album"])) == (None, None, 1000)

    # The kitchen's player drops out and comes back on the same track more than 60 s in.
    await asyncio.sleep(max(0.0, 62 - (datetime.now(UTC) - kitchen_started).total_seconds()))
    await play(home, KITCHEN, "unavailable", {"friendly_name": NAMES[KITCHEN]})
    await automation_done(
        home, await play(home, KITCHEN, "playing", music(KITCHEN, "Kitchen Song", duration=400))
    )
    await expect()

    # haunt-fm goes down; three tracks play meanwhile (one paused and resumed).
    haunt.stop()
    for title in ("Andvari", "Sé lest", "Heysátan"):
        await automation_done(home, await play(home, STUDY, "playing", music(STUDY, title)))
        if title == "Sé lest":
            await play(home, STUDY, "paused", music(STUDY, title))
            await automation_done(home, await play(home, STUDY, "playing", music(STUDY, title)))
    # Home Assistant logs an error for each report it could not deliver, and moves on.
    assert home.log().count("Client error occurred when calling resource") >= 4
    await asyncio.sleep(6)  # the recorder commits states a few seconds late

    # It comes back with a new API token that Home Assistant does not know yet, and reads
    # Home Assistant's history at start and then every 6 s.
    rotated = "rotated-api-token"
    haunt.start(api_token=rotated, ha_url=home.url, ha_token=home.token, ha_reconcile_minutes="0.1")
    api.headers["Authorization"] = f"Bearer {rotated}"
    expected.extend((title, STUDY, "parents", "ha_history") for title in ("Andvari", "Sé lest", "Heysátan"))
    assert await until_listens(api, len(expected)) == expected

    # With the token mismatch the webhook is refused (401), and the history brings it back.
    refused_at = await play(home, STUDY, "playing", music(STUDY, "Svefn-g-englar"))
    await automation_done(home, refused_at)
    assert "Status code 401" in home.log()
    expected.append(("Svefn-g-englar", STUDY, "parents", "ha_history"))
    assert await until_listens(api, len(expected)) == expected
    await asyncio.sleep(7)  # one more reconciliation: still nothing twice
    assert await listens(api) == expected
    recovered = (await api.get("/api/history/recent", params={"limit": 4})).json()["events"]
    assert all(datetime.fromisoformat(e["played_at"]) < refused_at + timedelta(seconds=1) for e in recovered)

    status = (await api.get("/api/status")).json()["homeassistant"]["reconciliation"]
    assert status["enabled"] is True and status["error"] is None
    assert {STUDY, HOUSE, KIDS, DINING, KITCHEN} <= set(status["players"])
    # The package went under the existing homeassistant: key: the user's settings survived.
    config = await home.get("/api/config")
    assert config["location_name"] == "Test Home"
    assert "duplicate key" not in home.log().lower()
