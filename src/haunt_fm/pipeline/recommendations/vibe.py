"""A vibe ("chill ambient lo-fi") as a unit vector in the audio space of the current model.

Two sources, never two models:

- **Tags** (`tags.service.ground_vibe`): the vibe matched to the library's Last.fm tags; the
  centroid of the audio of the embedded tracks carrying them. A plain SQL read (cached).
- **Text**: the CLAP text tower's vector of the vibe, from the SAME checkpoint as the audio
  vectors, and only when a worker running that model found its text tower healthy (the
  self-test at model load; `laion/larger_clap_music`'s is collapsed). Cached in
  `text_embeddings` by normalised text; otherwise embedded in-process (off the event loop)
  when an embedder is loaded, or queued (`TEXT_STAGE`) for any worker, waiting for its
  NOTIFY. It never holds a pooled connection while it waits: every read and write is its
  own short transaction, so ground the vibe before the request's own session does any work.

The vibe vector is normalise(0.7 x tags + 0.3 x text) when both exist (the tags are what
listeners said about these very tracks; CLAP text is strong on genre and instrument but weak
on mood), else whichever exists. With neither, the vibe can't steer: 409 saying what was
understood, whether discovery for its words started, and the library's common tags.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple, Protocol

import numpy as np
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.config import Settings
from haunt_fm.db.session import transaction
from haunt_fm.errors import AppError, Conflict, Unavailable
from haunt_fm.pipeline.embeddings import repository as embeddings
from haunt_fm.pipeline.embeddings.models import TEXTS_DONE, WORKER_STALE_SECONDS
from haunt_fm.pipeline.embeddings.vectors import unit_rows
from haunt_fm.pipeline.tags import service as tags
from haunt_fm.pipeline.tags.schemas import VibeBasis
from haunt_fm.pipeline.vibes import normalize_vibe
from haunt_fm.queue import Wakeups

log = logging.getLogger(__name__)

# Without LISTEN (or as a safety net), look at the cache again this often while waiting.
POLL_SECONDS = 1.0
# The blend of a vibe's two vectors when it has both (see the module docstring).
TAG_WEIGHT = 0.7
TEXT_WEIGHT = 0.3


class VibeNotUnderstood(Conflict):
    """The vibe can't steer: it matched no tag of an embedded track and the text tower can't be used."""

    def __init__(self, message: str, *, suggestions: list[str], basis: VibeBasis) -> None:
        super().__init__(message)
        self.suggestions = suggestions
        self.basis = basis

    def body(self) -> dict[str, Any]:
        return {**super().body(), "suggestions": self.suggestions}


class VibeTextUnavailable(Unavailable):
    """The vibe needs its text vector (no tag matched) and no worker could embed it in time."""

    error = "unavailable"

    def __init__(self, message: str, *, basis: VibeBasis) -> None:
        super().__init__(message)
        self.basis = basis


class GroundedVibe(NamedTuple):
    """A vibe's unit vector, how it was understood, and whether it lies far from every track."""

    vector: np.ndarray
    basis: VibeBasis
    diffuse: bool = False


def blend(tag_vector: np.ndarray | None, text_vector: np.ndarray | None) -> np.ndarray | None:
    """normalise(0.7 x tags + 0.3 x text) when both exist, else whichever exists."""
    if tag_vector is None or text_vector is None:
        return tag_vector if text_vector is None else text_vector
    mixed = TAG_WEIGHT * tag_vector + TEXT_WEIGHT * text_vector
    norm = float(np.linalg.norm(mixed))
    return tag_vector if norm == 0 or not np.isfinite(norm) else (mixed / norm).astype(np.float32)


class TextEmbedder(Protocol):
    """What the loaded CLAP model offers (synchronous, CPU-bound: call it from a thread)."""

    def embed_text(self, texts: Sequence[str]) -> np.ndarray: ...


class VibeEncoder:
    """Turns vibe text into a unit vector: tags (SQL) and, when the text tower works, CLAP text
    (cache, in-process model, or a worker via the queue)."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        model_id: str,
        embedder: TextEmbedder | None = None,
        timeout_s: float = 20.0,
        wakeups: Wakeups | None = None,
        poll_s: float = POLL_SECONDS,
        discover: bool = False,
    ) -> None:
        self.session_factory = session_factory
        self.embedder = embedder
        # The current model (HAUNTFM_CLAP_MODEL): the audio vectors a vibe is compared with are
        # its, so its text vectors and tag centroids are the only ones that may be used.
        self.model_id = model_id
        self.timeout_s = timeout_s
        self.wakeups = wakeups
        self.poll_s = poll_s
        # Whether Last.fm may be asked for a thin vibe's tags (a key is configured).
        self.discover = discover

    async def ground(self, *, text: str, wait: bool = True) -> GroundedVibe:
        """The vibe's vector and how it was understood; 409 (`VibeNotUnderstood`) when nothing can
        steer, 503 when only the text tower could and no worker embedded the text in time.

        `wait` False: a text vector that is neither cached nor embeddable in-process is queued
        for a worker but not waited for (the vibe may not be needed at all)."""
        model = self.model_id
        norm = normalize_vibe(text)
        # One short transaction for everything that is only read (and tag lookups queued).
        async with transaction(self.session_factory) as session:
            grounding = await tags.ground_vibe(session, text=text, model=model, discover=self.discover)
            tower = await embeddings.text_tower_ok(session, model=model, stale_seconds=WORKER_STALE_SECONDS)
            cached = await embeddings.cached_text(session, text_norm=norm) if tower else None
        text_vector: np.ndarray | None = None
        if tower:
            try:
                text_vector = self._usable_vector(cached)
                if text_vector is None:
                    text_vector = await self._embed(text=text, norm=norm, wait=wait)
            except AppError as exc:
                basis = _basis(grounding, text=False)
                if grounding.vector is None:
                    raise VibeTextUnavailable(exc.message, basis=basis) from exc
                log.info("vibe %r: using its tags alone: %s", text, exc.message)
        basis = _basis(grounding, text=text_vector is not None)
        vector = blend(grounding.vector, text_vector)
        if vector is None:
            async with self.session_factory() as session:
                common = await tags.suggestions(session, model=model)
                workers = (
                    await embeddings.live_workers(session, stale_seconds=WORKER_STALE_SECONDS)
                    if tower is None
                    else []
                )
            why = _tower_unusable(tower, workers=workers, model=model)
            raise VibeNotUnderstood(
                _not_understood(text, grounding, why=why, discover=self.discover),
                suggestions=common,
                basis=basis,
            )
        return GroundedVibe(vector, basis, diffuse=grounding.vector is not None and grounding.diffuse)

    def _usable_vector(self, row: Any) -> np.ndarray | None:
        if row is not None and self._usable(row):
            return np.asarray(row["embedding"], dtype=np.float32)
        return None

    async def _embed(self, *, text: str, norm: str, wait: bool) -> np.ndarray:
        """A text vector that is not cached: embedded here, or by a worker through the queue; 503
        when nothing can embed it in time (at once without `wait`, once it is queued)."""
        if self.embedder is not None:
            return await self._embed_here(text=text, norm=norm)
        return await self._wait_for_worker(text=text, norm=norm, wait=wait)

    def _usable(self, row: Any) -> bool:
        return row["status"] == "done" and row["embedding"] is not None and row["model"] == self.model_id

    async def _embed_here(self, *, text: str, norm: str) -> np.ndarray:
        embedder = self.embedder
        assert embedder is not None
        try:
            raw = await asyncio.to_thread(embedder.embed_text, [norm])
            vector = unit_rows(raw, 1)[0]
        except Exception as exc:
            log.exception("embedding the vibe text failed")
            raise Unavailable(
                f"The text model could not embed the vibe ({type(exc).__name__}); try again, "
                "or check the worker's errors in /api/status."
            ) from exc
        async with transaction(self.session_factory) as session:
            await embeddings.store_text(
                session,
                text_norm=norm,
                text=text,
                embedding=vector,
                model=self.model_id,
            )
        return vector

    async def _no_worker_can_embed(self) -> str | None:
        """Why no worker can embed a text right now, or None when one can."""
        async with self.session_factory() as session:
            workers = await embeddings.live_workers(session, stale_seconds=WORKER_STALE_SECONDS)
        if any(w["model_loaded"] for w in workers):
            return None
        return f"The vibe text can't be embedded now: {workers_without_model(workers, model=self.model_id)}."

    async def _wait_for_worker(self, *, text: str, norm: str, wait: bool = True) -> np.ndarray:
        # Queued either way: a worker that starts (or finishes loading) later embeds it.
        async with transaction(self.session_factory) as session:
            await embeddings.request_text(session, text_norm=norm, text=text, model=self.model_id)
        reason = await self._no_worker_can_embed()
        if reason is not None:
            raise Unavailable(reason)
        if not wait:
            raise Unavailable("The vibe text is queued for the embedding worker; try again shortly.")
        deadline = time.monotonic() + self.timeout_s
        while True:
            async with self.session_factory() as session:
                row = await embeddings.cached_text(session, text_norm=norm)
            if row is not None and self._usable(row):
                return np.asarray(row["embedding"], dtype=np.float32)
            if row is not None and row["status"] == "failed":
                raise Unavailable(
                    f"The embedding worker could not embed the vibe text: {row['error'] or 'unknown error'}. "
                    "Try a different wording, or check the worker in /api/status."
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unavailable(
                    f"The embedding worker did not embed the vibe text within {self.timeout_s:g} s; "
                    "it may be busy with a batch. Try again shortly."
                )
            if self.wakeups is not None and self.wakeups.listening:
                await self.wakeups.wait(TEXTS_DONE, min(left, self.poll_s * 5))
            else:
                await asyncio.sleep(min(self.poll_s, left))


def _basis(grounding: tags.Grounding, *, text: bool) -> VibeBasis:
    return VibeBasis(
        text=text, tags=grounding.tags, tag_tracks=grounding.tag_tracks, discovering=grounding.discovering
    )


def workers_without_model(workers: Sequence[dict[str, Any]], *, model: str) -> str:
    """Why none of the live `workers` (embeddings.live_workers) has `model` loaded, as a clause:
    none running, still loading (with the download's progress), or failing to load (with the
    next attempt)."""
    if not workers:
        return (
            "no embedding worker is running (turn on HAUNTFM_EMBEDDING_WORKER_ENABLED for the one "
            "inside `haunt-fm serve`, or start `haunt-fm worker`)"
        )
    loading = [w for w in workers if w["state"] == "loading"]
    if loading:
        download = (loading[0]["details"] or {}).get("download") or {}
        done, total = download.get("done"), download.get("total")
        if done is not None and total:
            how = f"downloading it: {int(done) // 1_000_000} of {int(total) // 1_000_000} MB; "
        elif done is not None:
            how = f"downloading it: {int(done) // 1_000_000} MB so far; "
        else:
            how = ""
        return f"the embedding worker is still loading {model} ({how}ask again once it has loaded)"
    failing = [w for w in workers if w["state"] == "error"]
    if failing:
        worker = failing[0]
        retry = _when((worker["details"] or {}).get("next_retry_at"))
        again = f" and tries again {retry}" if retry else ""
        return (
            f"the embedding worker could not load {model} ({worker['last_error'] or 'no reason given'})"
            f"{again}"
        )
    others = sorted({w["model"] for w in workers if w["model"] and w["model"] != model})
    if others:
        return f"the running embedding workers use {', '.join(others)}, not {model}"
    return f"no embedding worker running {model} has checked its text tower yet"


def _when(value: Any) -> str | None:
    """`at 12:34:56 UTC (in 25 s)` for an ISO time from a worker's heartbeat."""
    try:
        at = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    if at is None:
        return None
    seconds = max(0, round((at - datetime.now(UTC)).total_seconds()))
    left = f"{seconds} s" if seconds < 120 else f"{round(seconds / 60)} min"
    return f"at {at.astimezone(UTC):%H:%M:%S} UTC (in {left})"


def _tower_unusable(tower: bool | None, *, workers: Sequence[dict[str, Any]], model: str) -> str:
    """Why CLAP text can't steer: its tower failed the self-test, or no worker has checked it."""
    if tower is False:
        return f"the text tower of {model} failed its self-test"
    return f"CLAP text can't be used yet because {workers_without_model(workers, model=model)}"


def _not_understood(text: str, grounding: tags.Grounding, *, why: str, discover: bool) -> str:
    message = (
        f"The vibe {text!r} matched no Last.fm tag of an embedded track in the library, and {why}, "
        "so it can't steer the recommendations."
    )
    asked = ", ".join(repr(t) for t in grounding.lookups)
    if grounding.discovering:
        message += (
            f" Discovery for {asked} has started: Last.fm's top tracks for those tags join the library; "
            "ask again once they are embedded (progress in /api/status)."
        )
    elif not discover:
        message += (
            " Set HAUNTFM_LASTFM_API_KEY so that tracks get their Last.fm tags and vibes can be grounded "
            "in them."
        )
    elif grounding.lookups:
        message += f" Last.fm was asked for tracks tagged {asked} within the last day."
    return message + " Try one of the library's common tags (`suggestions`)."


def get_vibe_encoder(request: Request) -> VibeEncoder:
    """The request's encoder: the app's session factory and, when `serve` runs the worker, its model."""
    return get_vibe_encoder_for(request.app.state)


def get_vibe_encoder_for(state: Any) -> VibeEncoder:
    """An encoder for the app whose `app.state` this is (requests and `serve`'s background loops)."""
    return make_vibe_encoder(
        state.settings,
        state.session_factory,
        embedder=getattr(state, "embedder", None),
        wakeups=getattr(state, "wakeups", None),
    )


def make_vibe_encoder(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    *,
    embedder: TextEmbedder | None = None,
    wakeups: Wakeups | None = None,
) -> VibeEncoder:
    """The encoder the settings call for (the current model; Last.fm asked when a key is set)."""
    return VibeEncoder(
        session_factory=session_factory,
        embedder=embedder,
        timeout_s=settings.vibe_embed_timeout_seconds,
        model_id=settings.clap_model,
        wakeups=wakeups,
        discover=settings.lastfm_configured,
    )


VibeEncoderDep = Annotated[VibeEncoder, Depends(get_vibe_encoder)]
