"""Test data with controlled vectors for the taste / recommendation / feedback tests.

Rows go straight into the real database (the stages before these are tested elsewhere);
the service under test is always reached over HTTP.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.app import create_app
from haunt_fm.config import Settings
from haunt_fm.db.base import EMBEDDING_DIM
from tests.conftest import make_settings
from tests.support.live_server import LiveServer

Factory = async_sessionmaker[AsyncSession]
DIM = EMBEDDING_DIM


def unit(v: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float64)
    return (arr / np.linalg.norm(arr)).astype(np.float32)


def axis(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v


def mix(**weights: float) -> np.ndarray:
    """unit(sum w * e_i) for keyword names e0, e1, ...: mix(e0=0.9, e1=0.1)."""
    v = np.zeros(DIM, dtype=np.float64)
    for name, w in weights.items():
        v[int(name[1:])] += w
    return unit(v)


def toward(base: np.ndarray, other: np.ndarray, cos: float) -> np.ndarray:
    """A unit vector at cosine `cos` to unit `base`, rotated toward orthogonal unit `other`."""
    return unit(cos * base + np.sqrt(max(0.0, 1 - cos * cos)) * other)


_TRACK_SQL = text(
    """
    INSERT INTO tracks (title, artist, album, norm_artist, norm_title, norm_key, source, listened,
                        preview_status, preview_url, embedding_status)
    VALUES (:title, :artist, :album, lower(:artist), lower(:title),
            lower(:artist) || chr(31) || lower(:title),
            'lastfm', false, 'found', :preview_url, 'pending')
    RETURNING id
    """
)
# The model a default-configured service uses: only its vectors take part in any query.
MODEL = Settings.model_fields["clap_model"].default

_EMBED_SQL = text(
    """
    INSERT INTO track_embeddings (track_id, embedding, model, pipeline_version, windows)
    VALUES (:tid, :v, :model, 1, 3)
    ON CONFLICT (track_id) DO UPDATE SET embedding = EXCLUDED.embedding, model = EXCLUDED.model,
        created_at = now()
    """
).bindparams(bindparam("v", type_=Vector(DIM)))


async def add_track(
    db: Factory,
    title: str,
    vector: np.ndarray | None = None,
    *,
    artist: str = "Artist",
    album: str | None = None,
) -> int:
    """A discovered track with a preview and (optionally) its embedding."""
    async with db() as s, s.begin():
        tid = int(
            (
                await s.execute(
                    _TRACK_SQL,
                    {
                        "title": title,
                        "artist": artist,
                        "album": album,
                        "preview_url": f"https://p/{title}.m4a",
                    },
                )
            ).scalar_one()
        )
        if vector is not None:
            await s.execute(_EMBED_SQL, {"tid": tid, "v": vector, "model": MODEL})
            await s.execute(text("UPDATE tracks SET embedding_status = 'done' WHERE id = :t"), {"t": tid})
    return tid


async def add_tracks(db: Factory, vectors: np.ndarray, *, prefix: str = "T") -> list[int]:
    """Many embedded tracks at once (titles prefix0, prefix1, ...)."""
    ids: list[int] = []
    async with db() as s, s.begin():
        for i, v in enumerate(vectors):
            tid = int(
                (
                    await s.execute(
                        _TRACK_SQL,
                        {"title": f"{prefix}{i}", "artist": "Artist", "album": None, "preview_url": None},
                    )
                ).scalar_one()
            )
            await s.execute(_EMBED_SQL, {"tid": tid, "v": v, "model": MODEL})
            ids.append(tid)
    return ids


async def embed(db: Factory, track_id: int, vector: np.ndarray, *, model: str = MODEL) -> None:
    async with db() as s, s.begin():
        await s.execute(_EMBED_SQL, {"tid": track_id, "v": vector, "model": model})


async def profile_id(db: Factory, name: str) -> int:
    async with db() as s, s.begin():
        await s.execute(
            text("INSERT INTO profiles (name) VALUES (:n) ON CONFLICT (name) DO NOTHING"), {"n": name}
        )
        return int(
            (await s.execute(text("SELECT id FROM profiles WHERE name = :n"), {"n": name})).scalar_one()
        )


async def listen(
    db: Factory,
    track_id: int,
    *,
    profile: str = "default",
    days_ago: float = 0.0,
    times: int = 1,
    skipped: bool = False,
) -> None:
    """`times` listens of a track, two minutes apart, `days_ago` days back (marked skipped or not)."""
    pid = await profile_id(db, profile)
    start = datetime.now(UTC) - timedelta(days=days_ago)
    async with db() as s, s.begin():
        await s.execute(text("UPDATE tracks SET listened = true WHERE id = :t"), {"t": track_id})
        for k in range(times):
            await s.execute(
                text(
                    "INSERT INTO listen_events (track_id, profile_id, played_at, title, artist, skipped) "
                    "VALUES (:t, :p, :at, 'x', 'y', :skipped)"
                ),
                {"t": track_id, "p": pid, "at": start - timedelta(minutes=2 * k), "skipped": skipped},
            )


async def similar(db: Factory, seed: int, candidate: int, match: float) -> None:
    async with db() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO track_similarities (seed_track_id, candidate_track_id, match) "
                "VALUES (:a, :b, :m)"
            ),
            {"a": seed, "b": candidate, "m": match},
        )


# The model a default-configured worker embeds vibe texts with (cache entries must match it).
VIBE_MODEL = MODEL


async def text_tower(
    db: Factory, *, ok: bool | None = True, model: str = MODEL, worker: str = "w:1:a"
) -> None:
    """A live worker running `model` that checked its text tower (healthy, collapsed, or not yet)."""
    async with db() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO worker_states (id, hostname, pid, state, model, model_loaded, text_tower_ok) "
                "VALUES (:id, 'test', 1, 'idle', :model, true, :ok) "
                "ON CONFLICT (id) DO UPDATE SET text_tower_ok = EXCLUDED.text_tower_ok, "
                "model = EXCLUDED.model, heartbeat_at = now()"
            ),
            {"id": worker, "model": model, "ok": ok},
        )


async def cache_vibe(
    db: Factory, vibe_norm: str, vector: np.ndarray, *, model: str = VIBE_MODEL, tower_ok: bool | None = True
) -> None:
    """A vibe text a worker whose text tower passed its self-test already embedded (with
    `tower_ok` None, no worker is left to vouch for the tower)."""
    if tower_ok is not None:
        await text_tower(db, ok=tower_ok)
    async with db() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO text_embeddings (text_norm, text, status, embedding, model, done_at) "
                "VALUES (:n, :n, 'done', :v, :m, now())"
            ).bindparams(bindparam("v", type_=Vector(DIM))),
            {"n": vibe_norm, "v": vector, "m": model},
        )


async def taste_of(db: Factory, name: str = "default") -> tuple[np.ndarray | None, Any, Any]:
    async with db() as s:
        row = (
            await s.execute(
                text(
                    "SELECT taste_embedding, taste_built_at, taste_tracks_used FROM profiles WHERE name = :n"
                ).columns(taste_embedding=Vector(DIM)),
                {"n": name},
            )
        ).one()
    vec = None if row[0] is None else np.asarray(row[0], dtype=np.float32)
    return vec, row[1], row[2]


def ids(body: dict[str, Any]) -> list[int]:
    return [r["track_id"] for r in body["recommendations"]]


class StandInTextModel:
    """Stands in for the CLAP text tower: known texts map to known vectors, others to a hash.

    Synchronous and thread-safe like the real one; counts its calls.
    """

    def __init__(
        self, known: dict[str, np.ndarray] | None = None, *, fail: bool = False, model_id: str = VIBE_MODEL
    ) -> None:
        self.known = dict(known or {})
        self.fail = fail
        self.calls: list[list[str]] = []
        self.model_id = model_id
        self._lock = threading.Lock()

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.calls.append(list(texts))
        if self.fail:
            raise RuntimeError("text tower exploded")
        out = []
        for t in texts:
            if t in self.known:
                out.append(self.known[t])
            else:
                seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
                out.append(unit(np.random.default_rng(seed).standard_normal(DIM)))
        return np.stack(out).astype(np.float32)


@pytest.fixture
def serve_app(db: Factory, pg_url: str, tmp_path: Path) -> Iterator[Any]:
    """Like `serve`, but returns (url, app) so a test can hand the app a text model."""
    servers: list[LiveServer] = []

    def _serve(*, embedder: Any = None, **overrides: Any) -> tuple[str, Any]:
        settings = make_settings(tmp_path, pg_url, **overrides)
        app = create_app(settings, database_url=pg_url, start_background=False)
        server = LiveServer(app).start()
        servers.append(server)
        # After startup: the lifespan resets app.state.embedder to None.
        app.state.embedder = embedder
        return server.url, app

    yield _serve
    for server in servers:
        server.stop()


class GenreSpace:
    """Genres as clustered unit vectors, like real audio embeddings: every genre shares a common
    component (cosine ~0.36 between genre centres), tracks sit at cosine `within` to their centre,
    and a *bridge* genre can sit between two others (the centre of their centres), which is
    where a single mean of two genres lands."""

    def __init__(self, seed: int = 3, *, within: float = 0.85) -> None:
        self.rng = np.random.default_rng(seed)
        self.within = within
        self.common = unit(self.rng.standard_normal(DIM))
        self.centres: dict[str, np.ndarray] = {}

    def genre(self, name: str) -> np.ndarray:
        if name not in self.centres:
            own = self.rng.standard_normal(DIM)
            own -= (own @ self.common) * self.common
            self.centres[name] = unit(0.6 * self.common + 0.8 * unit(own))
        return self.centres[name]

    def bridge(self, name: str, a: str, b: str) -> np.ndarray:
        self.centres[name] = unit(self.genre(a) + self.genre(b))
        return self.centres[name]

    def track(self, name: str) -> np.ndarray:
        centre = self.genre(name)
        noise = self.rng.standard_normal(DIM)
        noise -= (noise @ centre) * centre
        return unit(self.within * centre + np.sqrt(1 - self.within**2) * unit(noise))
