"""Radio test data and a listener that plays the speaker's queue and reports it as the
Home Assistant automation would (POST /api/history/webhook), on a clock the test controls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import numpy as np
from sqlalchemy import text

from tests.fakes import FakeHomeAssistant
from tests.playlists.support import SPEAKERS
from tests.recommendations.support import Factory, add_track, axis, listen, toward
from tests.support.waiting import eventually_async

E0, E1, E2 = axis(0), axis(1), axis(2)
# Every listen says the track lasts this long: a skip is a next listen within 30 s of it.
TRACK_SECONDS = 200


@dataclass
class World:
    """Known favourites at e0; discoveries near e0 leaning toward e1 (artists 0-4) or e2 (5-9)."""

    known: list[int] = field(default_factory=list)
    new: list[int] = field(default_factory=list)
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    artist: dict[int, str] = field(default_factory=dict)

    def leans(self, track_id: int) -> str:
        """'e1' or 'e2': which side of e0 a discovery leans to."""
        v = self.vectors[track_id]
        return "e1" if v[1] > v[2] else "e2"


async def build_world(
    db: Factory, *, known: int = 6, per_artist: int = 6, profile: str = "default", tag: str = ""
) -> World:
    """Ten discovery artists with `per_artist` tracks each; every e1 track is nearer the taste than any e2."""
    world = World()
    for i in range(known):
        tid = await add_track(db, f"{tag}K{i}", E0, artist=f"{tag}Known Artist {i}")
        await listen(db, tid, profile=profile, days_ago=3, times=known - i)
        world.known.append(tid)
        world.artist[tid] = f"{tag}Known Artist {i}"
    for j in range(10 * per_artist):
        a = j % 10
        side = E1 if a < 5 else E2
        cos = (0.95 if a < 5 else 0.90) - 0.0005 * j
        v = toward(E0, side, cos)
        tid = await add_track(db, f"{tag}N{j}", v, artist=f"{tag}Artist {a}")
        world.new.append(tid)
        world.vectors[tid] = v
        world.artist[tid] = f"{tag}Artist {a}"
    return world


async def wait_until(check: Callable[[], Awaitable[Any]], *, seconds: float = 30.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy (the radio works in the background)."""
    return await eventually_async(check, what=what or str(check), seconds=seconds)


async def radio_on(http: httpx.AsyncClient, speaker: str, *, ended: bool = False) -> dict[str, Any] | None:
    """The newest radio on the speaker from GET /api/radio (active only unless `ended`)."""
    r = await http.get("/api/radio")
    assert r.status_code == 200, r.text
    for radio in r.json()["radios"]:
        if radio["speaker_entity"] == speaker and (ended or radio["active"]):
            return dict(radio)
    return None


async def ended_radio(http: httpx.AsyncClient, speaker: str) -> dict[str, Any] | None:
    """The newest radio on the speaker once it has ended (None while it plays)."""
    found = await radio_on(http, speaker, ended=True)
    return found if found is not None and not found["active"] else None


async def backdate(db: Factory, radio_id: int, *, days: float = 1.0) -> datetime:
    """Move the radio's start back in time, so the test's clock can run between then and now."""
    async with db() as s, s.begin():
        started = (
            await s.execute(
                text(
                    "UPDATE radios SET started_at = started_at - make_interval(days => :d) "
                    "WHERE id = :id RETURNING started_at"
                ),
                {"id": radio_id, "d": days},
            )
        ).scalar_one()
    return started  # type: ignore[no-any-return]


class Listener:
    """Plays the speaker's queue in order and tells haunt-fm, as the automation does."""

    def __init__(
        self, http: httpx.AsyncClient, ha: FakeHomeAssistant, speaker: str, *, clock: datetime
    ) -> None:
        self.http = http
        self.ha = ha
        self.speaker = speaker
        self.clock = clock
        self.heard: list[tuple[str, str]] = []  # (artist, title)

    async def report(self, title: str, artist: str, *, after: float = TRACK_SECONDS) -> dict[str, Any]:
        """A listen of (title, artist) starting `after` seconds after the previous one."""
        self.clock += timedelta(seconds=after)
        self.heard.append((artist, title))
        r = await self.http.post(
            "/api/history/webhook",
            json={
                "title": title,
                "artist": artist,
                "speaker_name": SPEAKERS.get(self.speaker),
                "speaker_entity": self.speaker,
                "played_at": self.clock.isoformat(),
                "duration_s": TRACK_SECONDS,
            },
        )
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    async def now_playing(self, *, after: float = TRACK_SECONDS) -> dict[str, Any]:
        """Report what the player is playing now (the radio's first track, after a replace)."""
        playing = self.ha.players[self.speaker].now_playing
        assert playing is not None, "nothing is playing"
        return await self.report(playing["media_title"], playing["media_artist"], after=after)

    async def next(self, *, after: float = TRACK_SECONDS) -> dict[str, Any]:
        """Go to the next queued track (as the player would at the end of one) and report it."""
        player = self.ha.players[self.speaker]
        assert player.queue, "the speaker's queue ran out"
        player.now_playing = player.queue.pop(0)
        return await self.now_playing(after=after)


def play_calls(ha: FakeHomeAssistant, speaker: str) -> list[dict[str, Any]]:
    """What Music Assistant was asked to play on the speaker, in order."""
    return [
        c.data
        for c in ha.service_calls
        if (c.domain, c.service) == ("music_assistant", "play_media") and c.data["entity_id"] == speaker
    ]
