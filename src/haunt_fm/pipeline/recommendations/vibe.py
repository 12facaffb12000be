"""Vibe text -> CLAP text-tower vector, cached in `text_embeddings` by normalised text.

An API process may or may not hold the model. `VibeEncoder.encode` answers from the
cache when it can; otherwise it embeds in-process (off the event loop) when an embedder
is loaded; otherwise it leaves a `pending` row that any worker, on any machine, fills
through `process_pending_texts`, and waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import Depends, Request
from pydantic import AfterValidator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.db.base import EMBEDDING_DIM
from haunt_fm.db.session import transaction
from haunt_fm.errors import Unavailable
from haunt_fm.pipeline.recommendations import repository as repo

log = logging.getLogger(__name__)

VIBE_MAX_CHARS = 200
POLL_SECONDS = 0.1
# How many pending texts one worker batch claims at most.
TEXT_BATCH = 32


def normalize_vibe(text: str) -> str:
    """The cache key and feedback context of a vibe: casefolded, whitespace collapsed."""
    return " ".join(text.split()).casefold()


def clean_vibe(value: str) -> str:
    """Trim a vibe and check it: non-blank, at most 200 characters, no NUL."""
    if "\x00" in value:
        raise ValueError("the vibe must not contain NUL characters")
    value = value.strip()
    if not value:
        raise ValueError("the vibe must not be blank")
    if len(value) > VIBE_MAX_CHARS:
        raise ValueError(f"the vibe must be at most {VIBE_MAX_CHARS} characters")
    return value


VibeStr = Annotated[str, AfterValidator(clean_vibe)]


class TextEmbedder(Protocol):
    """What the loaded CLAP model offers (synchronous, CPU-bound: call it from a thread)."""

    def embed_text(self, texts: Sequence[str]) -> np.ndarray: ...


def _model_name(embedder: Any) -> str | None:
    name = getattr(embedder, "text_model_id", None) or getattr(embedder, "model_id", None)
    return str(name) if name else None


def _unit_rows(vectors: Any, n: int) -> np.ndarray:
    """Check the embedder's answer (n, 512), finite, and L2-normalise it."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.shape != (n, EMBEDDING_DIM):
        raise ValueError(f"the text model returned shape {arr.shape}, expected ({n}, {EMBEDDING_DIM})")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if not np.all(np.isfinite(arr)) or np.any(norms == 0):
        raise ValueError("the text model returned a zero or non-finite vector")
    normalised: np.ndarray = arr / norms
    return normalised


class VibeEncoder:
    """Turns vibe text into a unit vector: cache, in-process model, or a worker via the queue."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        embedder: TextEmbedder | None = None,
        timeout_s: float = 20.0,
        poll_s: float = POLL_SECONDS,
        model_id: str | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.embedder = embedder
        # Which text model the vectors must come from: a vector cached by another model
        # (HAUNTFM_CLAP_TEXT_MODEL changed) lives in another space and is embedded again.
        self.model_id = _model_name(embedder) if embedder is not None else model_id
        self.timeout_s = timeout_s
        self.poll_s = poll_s

    async def encode(self, session: AsyncSession, *, text: str) -> np.ndarray:
        """The unit vector of `text` (already validated); 503 when nothing can embed it in time."""
        norm = normalize_vibe(text)
        cached = await repo.cached_text(session, text_norm=norm)
        if cached is not None and self._usable(cached):
            return np.asarray(cached["embedding"], dtype=np.float32)
        if self.embedder is not None:
            return await self._embed_here(text=text, norm=norm)
        return await self._wait_for_worker(text=text, norm=norm)

    def _usable(self, row: Any) -> bool:
        return (
            row is not None
            and row["status"] == "done"
            and row["embedding"] is not None
            and (self.model_id is None or row["model"] == self.model_id)
        )

    async def _embed_here(self, *, text: str, norm: str) -> np.ndarray:
        embedder = self.embedder
        assert embedder is not None
        try:
            raw = await asyncio.to_thread(embedder.embed_text, [norm])
            vector = _unit_rows(raw, 1)[0]
        except Exception as exc:
            log.exception("embedding the vibe text failed")
            raise Unavailable(
                f"The text model could not embed the vibe ({type(exc).__name__}); try again, "
                "or check the worker's errors in /api/status."
            ) from exc
        async with transaction(self.session_factory) as session:
            await repo.store_text_embedding(
                session, text_norm=norm, text=text, embedding=vector, model=_model_name(embedder)
            )
        return vector

    async def _wait_for_worker(self, *, text: str, norm: str) -> np.ndarray:
        # Committed on its own, so a worker on another machine sees the request at once.
        async with transaction(self.session_factory) as session:
            await repo.request_text_embedding(session, text_norm=norm, text=text, model=self.model_id)
        deadline = time.monotonic() + self.timeout_s
        while True:
            async with self.session_factory() as session:
                row = await repo.cached_text(session, text_norm=norm)
            if row is not None and self._usable(row):
                return np.asarray(row["embedding"], dtype=np.float32)
            if row is not None and row["status"] == "failed":
                raise Unavailable(
                    f"The embedding worker could not embed the vibe text: {row['error'] or 'unknown error'}. "
                    "Try a different wording, or check the worker in /api/status."
                )
            left = deadline - time.monotonic()
            if left <= 0:
                async with self.session_factory() as session:
                    workers = await repo.live_workers(session)
                if workers:
                    raise Unavailable(
                        f"The embedding worker did not embed the vibe text within {self.timeout_s:g} s; "
                        "it may be busy with a batch. Try again shortly."
                    )
                raise Unavailable(
                    "No embedding worker is running to embed the vibe text; start `haunt-fm worker` "
                    "or enable HAUNTFM_EMBEDDING_WORKER_ENABLED."
                )
            await asyncio.sleep(min(self.poll_s, left))


async def process_pending_texts(
    session_factory: async_sessionmaker[AsyncSession], embedder: TextEmbedder, *, limit: int = TEXT_BATCH
) -> int:
    """Claim pending vibe texts (FOR UPDATE SKIP LOCKED), embed them in one batch, store them.

    Returns how many rows were claimed. A worker that dies mid-batch rolls back and
    leaves the rows pending for the next one.
    """
    async with transaction(session_factory) as session:
        rows = await repo.claim_pending_texts(session, limit=limit)
        if not rows:
            return 0
        norms = [r["text_norm"] for r in rows]
        try:
            raw = await asyncio.to_thread(embedder.embed_text, norms)
            vectors = _unit_rows(raw, len(norms))
        except Exception as exc:
            log.exception("embedding %d vibe text(s) failed", len(norms))
            await repo.fail_texts(session, text_norms=norms, error=f"{type(exc).__name__}: {exc}"[:500])
            return len(norms)
        model = _model_name(embedder)
        for row, vector in zip(rows, vectors, strict=True):
            await repo.store_text_embedding(
                session, text_norm=row["text_norm"], text=row["text"], embedding=vector, model=model
            )
        return len(norms)


def get_vibe_encoder(request: Request) -> VibeEncoder:
    """The request's encoder: the app's session factory and, when `serve` runs the worker, its model."""
    state = request.app.state
    return VibeEncoder(
        session_factory=state.session_factory,
        embedder=getattr(state, "embedder", None),
        timeout_s=state.settings.vibe_embed_timeout_seconds,
        model_id=text_model_id(state.settings),
    )


def text_model_id(settings: Any) -> str:
    """The model whose text tower embeds vibes (what the workers are configured with)."""
    return str(settings.clap_text_model or settings.clap_model)


VibeEncoderDep = Annotated[VibeEncoder, Depends(get_vibe_encoder)]
