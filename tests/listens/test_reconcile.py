"""Listens recovered from Home Assistant's history: the stand-in records player states as the
recorder does, the webhook stored what reached it, and reconciliation logs what was missed by
the same rules — once, on the right profile, with the real start times."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.clients._http import RetryPolicy
from haunt_fm.clients.homeassistant import HomeAssistantClient
from haunt_fm.config import Settings
from haunt_fm.pipeline.listens.reconcile import reconcile, starts_from_history
from tests.fakes import FakeHomeAssistant
from tests.support.waiting import eventually_async

Factory = async_sessionmaker[AsyncSession]
TOKEN = "SECRET-ha-token-for-history"
STUDY = "media_player.study_speaker_2"
KIDS = "media_player.kids_room_speaker_2"
KITCHEN = "media_player.kitchen_stereo_2"
HOUSE = "media_player.whole_house_2"
FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02, jitter=0)
EXE = str(Path(sys.executable).parent / "haunt-fm")


class Timeline:
    """The stand-in's clock, moved by hand: a household's evening, an hour ago."""

    def __init__(self, start: datetime) -> None:
        self.start = self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: float) -> datetime:
        self.now = self.start + timedelta(minutes=minutes)
        return self.now


@pytest.fixture(scope="module")
def ha_server() -> Iterator[FakeHomeAssistant]:
    with FakeHomeAssistant(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def ha(ha_server: FakeHomeAssistant) -> FakeHomeAssistant:
    ha_server.reset()
    return ha_server


@pytest.fixture
def timeline(ha: FakeHomeAssistant) -> Timeline:
    clock = Timeline(datetime.now(UTC) - timedelta(hours=1))
    ha.clock = clock
    return clock


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], ha: FakeHomeAssistant) -> Settings:
    return settings_factory(ha_url=ha.url, ha_token=TOKEN)


@pytest.fixture
async def api(serve: Callable[..., str], ha: FakeHomeAssistant) -> AsyncIterator[httpx.AsyncClient]:
    """The app, configured for Home Assistant (its background loop off: the tests run it)."""
    async with httpx.AsyncClient(base_url=serve(ha_url=ha.url, ha_token=TOKEN), timeout=30) as http:
        yield http


def music(
    title: str, artist: str = "Sigur Rós", *, name: str, duration: float | None = 240, **extra: Any
) -> dict[str, Any]:
    """A Music Assistant player's attributes while it plays `title`."""
    return {
        "friendly_name": name,
        "app_id": "music_assistant",
        "group_members": [],
        "media_title": title,
        "media_artist": artist,
        "media_album_name": "Takk...",
        "media_content_id": f"apple_music://track/{abs(hash(title)) % 10**9}",
        "media_duration": duration,
        **extra,
    }


async def run(db: Factory, settings: Settings, ha: FakeHomeAssistant, **window: datetime) -> Any:
    async with HomeAssistantClient(ha.url, TOKEN, retry=FAST) as client:
        return await reconcile(session_factory=db, settings=settings, client=client, **window)


async def listens(db: Factory) -> list[dict[str, Any]]:
    async with db() as session:
        rows = await session.execute(
            text(
                "SELECT e.title, e.speaker_entity, p.name AS profile, e.played_at, e.source "
                "FROM listen_events e JOIN profiles p ON p.id = e.profile_id ORDER BY e.played_at, e.id"
            )
        )
        return [dict(r) for r in rows.mappings()]


async def map_speakers(api: httpx.AsyncClient, **speakers: list[str]) -> None:
    for profile, entities in speakers.items():
        assert (await api.post("/api/profiles", json={"name": profile})).status_code == 201
        assert (
            await api.put(f"/api/profiles/{profile}/speakers", json={"speakers": entities})
        ).status_code == 200


async def webhook(
    api: httpx.AsyncClient, state: dict[str, Any], *, late: timedelta = timedelta(0), **extra: Any
) -> dict[str, Any]:
    """What the automation sends for `state` (HA's now() a little after the change)."""
    attributes = state["attributes"]
    body = {
        "title": attributes["media_title"],
        "artist": attributes["media_artist"],
        "album": attributes.get("media_album_name"),
        "speaker_name": attributes.get("friendly_name"),
        "speaker_entity": state["entity_id"],
        "media_content_id": attributes.get("media_content_id"),
        "duration_s": round(attributes["media_duration"]) if attributes.get("media_duration") else None,
        "played_at": (datetime.fromisoformat(state["last_updated"]) + late).isoformat(),
        "group_members": attributes.get("group_members"),
        **extra,
    }
    r = await api.post("/api/history/webhook", json=body)
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


async def test_tracks_played_while_haunt_fm_was_down_are_recovered_once(
    db: Factory, api: httpx.AsyncClient, ha: FakeHomeAssistant, timeline: Timeline, settings: Settings
) -> None:
    await map_speakers(api, parents=[STUDY])
    timeline.at(0)
    ha.set_state(STUDY, "off", {"friendly_name": "Study speaker", "app_id": "music_assistant"})
    timeline.at(1)
    ha.set_state(STUDY, "playing", music("Glósóli", name="Study speaker"))
    # The webhook got this one (its played_at is HA's now() a moment after the change).
    first = await webhook(api, ha.state_json(STUDY) or {}, late=timedelta(milliseconds=800))
    assert first["status"] == "logged"
    # haunt-fm goes down for ten minutes; three tracks play, one paused and resumed.
    for minute, title in ((5, "Hoppípolla"), (9, "Sæglópur"), (13, "Gong")):
        timeline.at(minute)
        ha.set_state(STUDY, "playing", music(title, name="Study speaker"))
    timeline.at(14)
    ha.set_state(STUDY, "paused", music("Gong", name="Study speaker"))
    timeline.at(15)
    ha.set_state(STUDY, "playing", music("Gong", name="Study speaker"))
    timeline.at(16)
    ha.set_state(STUDY, "playing", {**music("Gong", name="Study speaker"), "volume_level": 0.2})

    result = await run(db, settings, ha)
    assert result.error is None
    assert result.players == [STUDY]
    assert (result.listens_found, result.recovered) == (5, 3)
    stored = await listens(db)
    assert [(e["title"], e["profile"], e["source"]) for e in stored] == [
        ("Glósóli", "parents", "webhook"),
        ("Hoppípolla", "parents", "ha_history"),
        ("Sæglópur", "parents", "ha_history"),
        ("Gong", "parents", "ha_history"),
    ]
    # Their real start times, as Home Assistant recorded them.
    assert [e["played_at"] for e in stored[1:]] == [timeline.start + timedelta(minutes=m) for m in (5, 9, 13)]

    # Reading the same window again changes nothing.
    again = await run(db, settings, ha, start=result.start, end=result.end)
    assert (again.listens_found, again.recovered) == (5, 0)
    # The next periodic run starts shortly before where this one ended.
    nxt = await run(db, settings, ha)
    assert result.end - timedelta(minutes=5) == nxt.start
    assert len(await listens(db)) == 4

    status = (await api.get("/api/status")).json()["homeassistant"]["reconciliation"]
    assert status["enabled"] is True and status["players"] == [STUDY]
    # It shows the last run: the periodic one just now.
    assert status["kind"] == "periodic" and status["listens_recovered"] == 0
    assert datetime.fromisoformat(status["window"]["start"]) == nxt.start
    assert status["error"] is None and status["last_run_at"]
    recent = (await api.get("/api/history/recent")).json()["events"]
    assert [e["source"] for e in recent] == ["ha_history", "ha_history", "ha_history", "webhook"]


@pytest.mark.parametrize(
    ("late", "profile", "expected"),
    [
        (timedelta(seconds=3), None, "duplicate"),  # the webhook's usual latency
        (timedelta(seconds=50), "kid", "duplicate"),  # same speaker: another profile is no excuse
        (timedelta(seconds=-20), None, "duplicate"),  # a webhook clock running early
        (timedelta(seconds=100), None, "resumed"),  # beyond 60 s, still the same play of the track
    ],
)
async def test_a_listen_the_webhook_stored_is_not_stored_again(
    db: Factory,
    api: httpx.AsyncClient,
    ha: FakeHomeAssistant,
    timeline: Timeline,
    settings: Settings,
    late: timedelta,
    profile: str | None,
    expected: str,
) -> None:
    await map_speakers(api, kid=[KIDS])
    timeline.at(1)
    ha.set_state(STUDY, "playing", music("Untitled #1", name="Study speaker", duration=400))
    await webhook(api, ha.state_json(STUDY) or {}, late=late, profile=profile)
    result = await run(db, settings, ha, start=timeline.start, end=timeline.at(20))
    assert (result.listens_found, result.recovered) == (1, 0), expected
    assert len(await listens(db)) == 1


async def test_a_group_and_its_members_in_history_are_one_listen_for_the_group(
    db: Factory, api: httpx.AsyncClient, ha: FakeHomeAssistant, timeline: Timeline, settings: Settings
) -> None:
    await map_speakers(api, parents=[HOUSE], kid=[KIDS], cook=[KITCHEN])
    timeline.at(0)
    for entity, name in ((KIDS, "Kids Room speaker"), (KITCHEN, "Kitchen stereo"), (HOUSE, "Whole House")):
        ha.set_state(entity, "idle", {"friendly_name": name, "app_id": "music_assistant"})
    # Music Assistant updates one member before the group and the other after it.
    timeline.at(2)
    ha.set_state(KIDS, "playing", music("Hafssól", name="Kids Room speaker"))
    timeline.now += timedelta(milliseconds=40)
    ha.set_state(HOUSE, "playing", music("Hafssól", name="Whole House", group_members=[KIDS, KITCHEN]))
    timeline.now += timedelta(milliseconds=40)
    ha.set_state(KITCHEN, "playing", music("Hafssól", name="Kitchen stereo"))
    # Later the kid plays something alone.
    timeline.at(10)
    ha.set_state(HOUSE, "idle", {"friendly_name": "Whole House", "group_members": [KIDS, KITCHEN]})
    ha.set_state(KITCHEN, "idle", {"friendly_name": "Kitchen stereo"})
    ha.set_state(KIDS, "playing", music("Svefn-g-englar", name="Kids Room speaker"))

    result = await run(db, settings, ha)
    assert result.players == sorted([HOUSE, KIDS, KITCHEN])
    assert [(e["title"], e["speaker_entity"], e["profile"]) for e in await listens(db)] == [
        ("Hafssól", HOUSE, "parents"),
        ("Svefn-g-englar", KIDS, "kid"),
    ]
    assert (await run(db, settings, ha)).recovered == 0


async def test_players_read_are_mapped_speakers_listened_speakers_and_the_setting(
    db: Factory,
    api: httpx.AsyncClient,
    ha: FakeHomeAssistant,
    timeline: Timeline,
    settings_factory: Callable[..., Settings],
) -> None:
    await map_speakers(api, kid=["Kids Room speaker", KIDS])  # a name is no entity id
    await api.post(
        "/api/history/webhook",
        json={"title": "A", "artist": "B", "speaker_entity": "media_player.garage_wifi_2"},
    )
    await api.post("/api/history/webhook", json={"title": "C", "artist": "B", "speaker_name": "Hallway"})
    settings = settings_factory(ha_url=ha.url, ha_token=TOKEN, ha_players=" media_player.Den_2 , ,")
    result = await run(db, settings, ha)
    assert result.players == ["media_player.den_2", "media_player.garage_wifi_2", KIDS]
    (request,) = [r for r in ha.requests if r.path.startswith("/api/history/period/")]
    assert request.query["filter_entity_id"] == ",".join(result.players)


async def test_a_refused_token_is_recorded_and_the_window_read_again_later(
    db: Factory,
    api: httpx.AsyncClient,
    ha: FakeHomeAssistant,
    timeline: Timeline,
    settings_factory: Callable[..., Settings],
) -> None:
    await map_speakers(api, parents=[STUDY])
    timeline.at(3)
    ha.set_state(STUDY, "playing", music("Starálfur", name="Study speaker"))
    wrong = settings_factory(ha_url=ha.url, ha_token="an-old-token")
    async with HomeAssistantClient(ha.url, "an-old-token", retry=FAST) as client:
        failed = await reconcile(session_factory=db, settings=wrong, client=client)
    assert failed.error is not None and "HAUNTFM_HA_TOKEN" in failed.error
    status = (await api.get("/api/status")).json()["homeassistant"]["reconciliation"]
    assert status["error"] == failed.error and status["last_error"] == failed.error
    assert status["last_error_at"]
    assert await listens(db) == []
    # With the right token the same window is read: nothing was skipped.
    settings = settings_factory(ha_url=ha.url, ha_token=TOKEN)
    recovered = await run(db, settings, ha)
    assert recovered.error is None and recovered.recovered == 1
    assert recovered.start <= timeline.start + timedelta(minutes=3)


def _state(entity: str, state: str, at: datetime, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    when = at.isoformat()
    return {
        "entity_id": entity,
        "state": state,
        "attributes": attributes or {},
        "last_changed": when,
        "last_updated": when,
    }


def test_which_recorded_states_are_listen_reports() -> None:
    t = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)

    def at(minutes: float) -> datetime:
        return t + timedelta(minutes=minutes)

    a, b = music("A", name="Study"), music("B", name="Study")
    radio = {k: v for k, v in music("Radio Paradise", name="Study").items() if k != "media_artist"}
    states = [
        _state(STUDY, "playing", t, music("Before", name="Study")),  # the state at the window's start
        _state(STUDY, "off", at(1), {"friendly_name": "Study"}),
        _state(STUDY, "playing", at(2), a),  # off -> playing
        _state(STUDY, "playing", at(2.1), {**a, "volume_level": 0.5}),  # an attribute, same track
        _state(STUDY, "paused", at(3), a),
        _state(STUDY, "playing", at(4), a),  # pause -> resume (the rules make it "resumed")
        _state(STUDY, "paused", at(5), a),
        _state(STUDY, "paused", at(5.5), b),  # next pressed while paused
        _state(STUDY, "playing", at(6), b),  # ... then play
        _state(STUDY, "unavailable", at(7)),
        _state(STUDY, "playing", at(8), b),  # unavailable -> playing
        _state(STUDY, "playing", at(9), radio),  # no artist: not music
        _state(STUDY, "playing", at(10), {**b, "media_title": "\u200b"}),  # blank title: not music
    ]
    reports = starts_from_history(states, window_start=t)
    assert [(r.title, r.played_at) for r in reports] == [
        ("A", at(2)),
        ("A", at(4)),
        ("B", at(6)),
        ("B", at(8)),
    ]
    assert reports[0].speaker_entity == STUDY and reports[0].duration_s == 240
    assert reports[0].group_members == []
    # A player already playing when the window starts: a report only if it changed after it.
    assert starts_from_history(states[:1], window_start=t - timedelta(seconds=1))[0].title == "Before"


async def test_it_runs_at_start_when_serve_has_home_assistant(
    serve: Callable[..., str], db: Factory, ha: FakeHomeAssistant, timeline: Timeline
) -> None:
    base = serve(start_background=True, ha_url=ha.url, ha_token=TOKEN, ha_players=STUDY)
    timeline.at(2)
    ha.set_state(STUDY, "playing", music("Andvari", name="Study speaker"))
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def ran() -> dict[str, Any] | None:
            status: dict[str, Any] = (await http.get("/api/status")).json()["homeassistant"]["reconciliation"]
            return status if status["last_run_at"] else None

        status = await eventually_async(ran, what="the startup reconciliation", seconds=30, every=0.2)
    assert status["enabled"] is True and status["interval_minutes"] == 10
    # The state was set before serve started: the startup run found it.
    assert [(e["title"], e["source"]) for e in await listens(db)] == [("Andvari", "ha_history")]


async def test_backfill_reads_an_explicit_window(
    db: Factory,
    pg_url: str,
    tmp_path: Path,
    api: httpx.AsyncClient,
    ha: FakeHomeAssistant,
    timeline: Timeline,
) -> None:
    await map_speakers(api, parents=[STUDY])
    for minute, title in ((2, "Ára bátur"), (30, "Heysátan")):
        timeline.at(minute)
        ha.set_state(STUDY, "playing", music(title, name="Study speaker"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAUNTFM_")}
    env |= {
        "HAUNTFM_DATABASE_URL": pg_url,
        "HAUNTFM_DATA_DIR": str(tmp_path / "data"),
        "HAUNTFM_HA_URL": ha.url,
        "HAUNTFM_HA_TOKEN": TOKEN,
        "HAUNTFM_LOG_LEVEL": "WARNING",
    }
    until = (timeline.start + timedelta(minutes=10)).isoformat()

    def backfill(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, "backfill", *args], env=env, capture_output=True, text=True, timeout=120)

    done = await asyncio.to_thread(backfill, "--since", timeline.start.isoformat(), "--until", until)
    assert done.returncode == 0, done.stderr
    assert "1 listen(s) recovered" in done.stdout and "1 player(s)" in done.stdout
    assert [e["title"] for e in await listens(db)] == ["Ára bátur"]
    bad = await asyncio.to_thread(backfill, "--since", "last tuesday")
    assert bad.returncode == 2 and "is not a date" in bad.stderr
    no_ha = {**env, "HAUNTFM_HA_URL": ""}
    refused = await asyncio.to_thread(
        subprocess.run, [EXE, "backfill", "--since", "2026-01-01"], env=no_ha, capture_output=True, text=True
    )
    assert refused.returncode == 1 and "HAUNTFM_HA_URL" in refused.stderr
