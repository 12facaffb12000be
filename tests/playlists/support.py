"""Playlist test data: listened favourites and discoveries with controlled vectors, straight into
the real database (earlier stages are tested elsewhere); the service is always reached over HTTP."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import text

from tests.recommendations.support import Factory, add_track, axis, listen, toward

HA_TOKEN = "SECRET-ha-long-lived-token-7f3a"
LIVING = "media_player.living_room_speaker_2"
STUDY = "media_player.study_speaker_2"
SPEAKERS = {LIVING: "Living Room speaker", STUDY: "Study speaker"}

E0, E1, E2, E3 = axis(0), axis(1), axis(2), axis(3)


@dataclass
class World:
    """Known favourites in weight order and discoveries in recommendation order."""

    known: list[int] = field(default_factory=list)
    new: list[int] = field(default_factory=list)
    names: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (artist, title)


async def build_world(db: Factory, *, known: int = 10, new: int = 30, profile: str = "default") -> World:
    """`known` listened tracks (K0 most played) at e0, `new` candidates (N0 nearest) around e0."""
    world = World()
    for i in range(known):
        artist, title = f"Known Artist {i}", f"K{i}"
        tid = await add_track(db, title, E0, artist=artist, album=f"Album K{i}")
        await listen(db, tid, profile=profile, times=known - i)
        world.known.append(tid)
        world.names[tid] = (artist, title)
    for j in range(new):
        artist, title = f"New Artist {j}", f"N{j}"
        tid = await add_track(db, title, toward(E0, E1, 0.95 - 0.02 * j), artist=artist)
        world.new.append(tid)
        world.names[tid] = (artist, title)
    return world


def track_ids(body: dict[str, Any]) -> list[int]:
    return [t["track_id"] for t in body["tracks"]]


def kinds(body: dict[str, Any]) -> str:
    """'kn..' string: k for known, n for new, in playlist order."""
    return "".join(t["kind"][0] for t in body["tracks"])


def artist_runs_ok(artists: list[str], limit: int = 2) -> bool:
    run = 0
    for i, a in enumerate(artists):
        run = run + 1 if i and artists[i - 1] == a else 1
        if run > limit:
            return False
    return True


async def saved_playlists(db: Factory) -> int:
    async with db() as s:
        return int((await s.execute(text("SELECT count(*) FROM playlists"))).scalar_one())


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return f"http://127.0.0.1:{port}"


def unit_vec(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)
