"""Vibe text -> CLAP text-tower vector, cached in `text_embeddings` by normalised text.

An API process may or may not hold the model. `VibeEncoder.encode` answers from the
cache when it can; otherwise it embeds in-process (off the event loop) when an embedder
is loaded; otherwise it queues the text (`TEXT_STAGE`) for any worker on any machine and
waits for the worker's NOTIFY. It never holds a pooled connection while it waits: every
read and write is its own short transaction, so call it before the request's own session
does any work. With no worker able to embed (none running, or none has a model loaded)
it answers at once, saying why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.db.session import transaction
from haunt_fm.errors import Unavailable
from haunt_fm.pipeline.embeddings import repository as embeddings
from haunt_fm.pipeline.embeddings.models import TEXTS_DONE, WORKER_STALE_SECONDS
from haunt_fm.pipeline.embeddings.vectors import unit_rows
from haunt_fm.pipeline.vibes import normalize_vibe
from haunt_fm.queue import Wakeups

log = logging.getLogger(__name__)

# Without LISTEN (or as a safety net), look at the cache again this often while waiting.
POLL_SECONDS = 1.0


class TextEmbedder(Protocol):
    """What the loaded CLAP model offers (synchronous, CPU-bound: call it from a thread)."""

    def embed_text(self, texts: Sequence[str]) -> np.ndarray: ...


def _model_name(embedder: Any) -> str | None:
    name = getattr(embedder, "text_model_id", None) or getattr(embedder, "model_id", None)
    return str(name) if name else None


class VibeEncoder:
    """Turns vibe text into a unit vector: cache, in-process model, or a worker via the queue."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        embedder: TextEmbedder | None = None,
        timeout_s: float = 20.0,
        model_id: str | None = None,
        wakeups: Wakeups | None = None,
        poll_s: float = POLL_SECONDS,
    ) -> None:
        self.session_factory = session_factory
        self.embedder = embedder
        # Which text model the vectors must come from: a vector cached by another model
        # lives in another space and is embedded again.
        self.model_id = _model_name(embedder) if embedder is not None else model_id
        self.timeout_s = timeout_s
        self.wakeups = wakeups
        self.poll_s = poll_s

    async def encode(self, *, text: str) -> np.ndarray:
        """The unit vector of `text` (already validated); 503 when nothing can embed it in time."""
        norm = normalize_vibe(text)
        cached = await self._cached(norm)
        if cached is not None:
            return cached
        if self.embedder is not None:
            return await self._embed_here(text=text, norm=norm)
        return await self._wait_for_worker(text=text, norm=norm)

    async def _cached(self, norm: str) -> np.ndarray | None:
        async with self.session_factory() as session:
            row = await embeddings.cached_text(session, text_norm=norm)
        if row is not None and self._usable(row):
            return np.asarray(row["embedding"], dtype=np.float32)
        return None

    def _usable(self, row: Any) -> bool:
        return (
            row["status"] == "done"
            and row["embedding"] is not None
            and (self.model_id is None or row["model"] == self.model_id)
        )

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
                session, text_norm=norm, text=text, embedding=vector, model=_model_name(embedder)
            )
        return vector

    async def _no_worker_can_embed(self) -> str | None:
        """Why no worker can embed a text right now, or None when one can."""
        async with self.session_factory() as session:
            workers = await embeddings.live_workers(session, stale_seconds=WORKER_STALE_SECONDS)
        if any(w["model_loaded"] for w in workers):
            return None
        if not workers:
            return (
                "No embedding worker is running to embed the vibe text; start `haunt-fm worker` "
                "or enable HAUNTFM_EMBEDDING_WORKER_ENABLED."
            )
        failing = [w for w in workers if w["state"] == "error" and w["last_error"]]
        if failing:
            return (
                f"The embedding worker can't embed the vibe text: it has no model loaded "
                f"({failing[0]['last_error']}). See /api/status."
            )
        return (
            "The embedding worker is still loading its model, so it can't embed the vibe text yet; "
            "try again in a minute (progress in /api/status)."
        )

    async def _wait_for_worker(self, *, text: str, norm: str) -> np.ndarray:
        # Queued either way: a worker that starts (or finishes loading) later embeds it.
        async with transaction(self.session_factory) as session:
            await embeddings.request_text(session, text_norm=norm, text=text, model=self.model_id)
        reason = await self._no_worker_can_embed()
        if reason is not None:
            raise Unavailable(reason)
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


def get_vibe_encoder(request: Request) -> VibeEncoder:
    """The request's encoder: the app's session factory and, when `serve` runs the worker, its model."""
    return app_vibe_encoder(request.app.state)


def app_vibe_encoder(state: Any) -> VibeEncoder:
    """An encoder for the running app (`app.state`): its sessions and, when it holds one, its model."""
    return VibeEncoder(
        session_factory=state.session_factory,
        embedder=getattr(state, "embedder", None),
        timeout_s=state.settings.vibe_embed_timeout_seconds,
        model_id=text_model_id(state.settings),
        wakeups=getattr(state, "wakeups", None),
    )


def text_model_id(settings: Any) -> str:
    """The model whose text tower embeds vibes (what the workers are configured with)."""
    return str(settings.clap_text_model or settings.clap_model)


VibeEncoderDep = Annotated[VibeEncoder, Depends(get_vibe_encoder)]
