"""The embedding worker: claim tracks with a lease, download and decode previews, run CLAP,
store vectors. Runs inside `serve` or alone as `haunt-fm worker`; any number of workers on
any number of machines can share one database (claims use FOR UPDATE SKIP LOCKED, leases
expire when a worker dies, and a result is stored only by the lease holder).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.config import Settings
from haunt_fm.db.session import transaction
from haunt_fm.pipeline.embeddings import repository as repo
from haunt_fm.pipeline.embeddings.audio import (
    SILENT_REASON,
    AudioDecodeError,
    AudioDownloadError,
    decode_audio,
    download_preview,
    is_silent,
)

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30.0
TEXT_POLL_SECONDS = 0.5
MODEL_RETRY_SECONDS = (30.0, 60.0, 300.0, 900.0)
DOWNLOAD_CONCURRENCY = 4
DOWNLOAD_TIMEOUT_SECONDS = 30.0
PREVIEW_GONE = (404, 410)


class EmbeddingWorker:
    """One worker process's loop; `state` is idle, working or error."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        load_embedder: Callable[[], Any] | None = None,
        on_model_loaded: Callable[[Any], None] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = session_factory
        self.http = http
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.state = "idle"
        self.last_error: str | None = None
        self.last_batch_at: datetime | None = None
        self.tracks_done = 0
        self.embedder: Any = None
        self.text_tower_ok: bool | None = None
        self.text_tower_note: str | None = None
        self._load_embedder = load_embedder or self._default_loader
        self._on_model_loaded = on_model_loaded
        # One model, one inference thread: batches never run on the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clap")
        self._load_failures = 0
        self._last_heartbeat = 0.0
        self.audio_dir = settings.resolved_audio_cache_dir

    # -- lifecycle ----------------------------------------------------------------------
    def _default_loader(self) -> Any:
        from haunt_fm.pipeline.embeddings.model import ClapEmbedder

        return ClapEmbedder.load(
            self.settings.clap_model,
            cache_dir=self.settings.resolved_model_cache_dir,
            torch_threads=self.settings.torch_threads,
            text_model=self.settings.clap_text_model,
            runtime=self.settings.embedding_runtime,
        )

    async def run_forever(self) -> None:
        """Load the model, then embed batches until cancelled. Never raises on bad input."""
        try:
            while True:
                if self.embedder is None and not await self.load_model():
                    delay = MODEL_RETRY_SECONDS[min(self._load_failures - 1, len(MODEL_RETRY_SECONDS) - 1)]
                    await self._idle(delay, texts=False)
                    continue
                try:
                    done = await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a database hiccup must not kill the worker
                    log.exception("embedding batch failed")
                    self._set_error(f"batch failed: {type(exc).__name__}: {exc}")
                    await self._idle(min(self.settings.embedding_interval_seconds, 30.0) or 1.0)
                    continue
                if done == 0:
                    await self._idle(self.settings.embedding_interval_seconds)
        finally:
            with contextlib.suppress(Exception):
                async with transaction(self.sessions) as session:
                    await repo.forget_worker(session, worker_id=self.id)
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def load_model(self) -> bool:
        """Load the CLAP model off the event loop; on failure record state `error`."""
        from haunt_fm.pipeline.embeddings.model import ModelUnavailable

        self.state = "working"
        await self.heartbeat(force=True)
        loop = asyncio.get_running_loop()
        try:
            embedder = await loop.run_in_executor(self._executor, self._load_embedder)
            ok, note = await loop.run_in_executor(self._executor, embedder.text_tower_check)
        except ModelUnavailable as exc:
            self._load_failures += 1
            self._set_error(str(exc))
            log.error("%s", exc)
            await self.heartbeat(force=True)
            return False
        except Exception as exc:
            self._load_failures += 1
            self._set_error(
                f"could not load the CLAP model {self.settings.clap_model!r} "
                f"(HAUNTFM_CLAP_MODEL): {type(exc).__name__}: {exc}"
            )
            log.exception("model load failed")
            await self.heartbeat(force=True)
            return False
        self.embedder = embedder
        self.text_tower_ok, self.text_tower_note = bool(ok), note
        if not ok:
            log.warning("%s", note)
        self._load_failures = 0
        self.state, self.last_error = "idle", None
        from haunt_fm.pipeline.embeddings.model import PIPELINE_VERSION

        async with transaction(self.sessions) as session:
            requeued = await repo.requeue_outdated(
                session, model=embedder.model_id, pipeline_version=PIPELINE_VERSION
            )
        if requeued:
            log.info("re-embedding %d tracks made by another model or pipeline version", requeued)
        if self._on_model_loaded is not None:
            self._on_model_loaded(embedder)
        await self.heartbeat(force=True)
        return True

    # -- one batch ----------------------------------------------------------------------
    async def run_once(self) -> int:
        """Embed pending vibe texts and one batch of tracks; returns how many items were handled."""
        if self.embedder is None:
            return 0
        handled = await self.process_texts()
        async with transaction(self.sessions) as session:
            claimed = await repo.claim(
                session,
                owner=self.id,
                limit=self.settings.embedding_batch_size,
                lease_seconds=self.settings.embedding_lease_seconds,
            )
        if not claimed:
            return handled
        self.state = "working"
        await self.heartbeat(force=True)
        try:
            await self._process(claimed)
        except BaseException:
            # Shutdown or a crash mid-batch: hand the unfinished leases back now rather
            # than making other workers wait for them to expire.
            with contextlib.suppress(Exception):
                async with transaction(self.sessions) as session:
                    await asyncio.shield(
                        repo.release(session, track_ids=[c["id"] for c in claimed], owner=self.id)
                    )
            raise
        self.last_batch_at = datetime.now(UTC)
        self.state = "idle"
        await self.heartbeat(force=True)
        return handled + len(claimed)

    async def _process(self, claimed: list[dict[str, Any]]) -> None:
        semaphore = asyncio.Semaphore(DOWNLOAD_CONCURRENCY)
        gone: set[int] = set()  # preview URLs that no longer exist: look the track up again
        loop = asyncio.get_running_loop()

        async def prepare(item: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray | None, str | None, bool]:
            async with semaphore:
                try:
                    path = await download_preview(
                        self.http,
                        item["preview_url"],
                        self.audio_dir,
                        max_bytes=self.settings.max_preview_bytes,
                        timeout=DOWNLOAD_TIMEOUT_SECONDS,
                    )
                    samples = await asyncio.to_thread(decode_audio, path)
                except AudioDownloadError as exc:
                    if (
                        exc.status_code in PREVIEW_GONE
                        and item["embedding_attempts"] < self.settings.embedding_max_attempts
                    ):
                        gone.add(item["id"])
                    return item, None, str(exc), exc.transient
                except AudioDecodeError as exc:
                    self._drop_cached(item)
                    return item, None, f"could not decode the preview: {exc}", False
                if samples.size == 0:
                    return item, None, "the preview holds no audio", False
                if is_silent(samples):
                    return item, None, SILENT_REASON, False
                return item, samples, None, False

        prepared = await asyncio.gather(*(prepare(item) for item in claimed))
        ready = [(item, samples) for item, samples, _, _ in prepared if samples is not None]
        failures = [
            (item, error, transient) for item, samples, error, transient in prepared if samples is None
        ]

        vectors: np.ndarray | None = None
        counts: list[int] = []
        if ready:
            try:
                result = await loop.run_in_executor(
                    self._executor, self.embedder.embed_audio, [s for _, s in ready]
                )
                vectors, counts = result[0], list(result[1])
            except Exception as exc:
                log.exception("CLAP inference failed")
                failures += [
                    (item, f"embedding failed: {type(exc).__name__}: {exc}", True) for item, _ in ready
                ]
                ready = []

        from haunt_fm.pipeline.embeddings.model import PIPELINE_VERSION

        stored = 0
        async with transaction(self.sessions) as session:
            for i, (item, _) in enumerate(ready):
                assert vectors is not None
                if await repo.store_embedding(
                    session,
                    track_id=item["id"],
                    owner=self.id,
                    vector=vectors[i],
                    model=self.embedder.model_id,
                    pipeline_version=PIPELINE_VERSION,
                    windows=counts[i],
                ):
                    stored += 1
            for item, error, transient in failures:
                if item["id"] in gone:
                    # iTunes preview URLs expire: find the current one rather than give up.
                    await repo.requeue_preview(
                        session, track_id=item["id"], owner=self.id, error=error or "preview gone"
                    )
                    continue
                retry_at = self._retry_at(item, transient)
                await repo.record_failure(
                    session,
                    track_id=item["id"],
                    owner=self.id,
                    error=error or "unknown error",
                    retry_at=retry_at,
                )
                if retry_at is None:
                    self._drop_cached(item)
                    log.warning(
                        "track %s (%s - %s) failed: %s", item["id"], item["artist"], item["title"], error
                    )
        for item, _ in ready:
            self._drop_cached(item)
        self.tracks_done += stored
        if failures and not ready:
            self.last_error = failures[-1][1]

    def _retry_at(self, item: dict[str, Any], transient: bool) -> datetime | None:
        if not transient or item["embedding_attempts"] >= self.settings.embedding_max_attempts:
            return None
        backoff = 60.0 * 2 ** (item["embedding_attempts"] - 1)
        return datetime.now(UTC) + timedelta(seconds=backoff)

    def _drop_cached(self, item: dict[str, Any]) -> None:
        from haunt_fm.pipeline.embeddings.audio import cache_path_for

        with contextlib.suppress(OSError):
            Path(cache_path_for(item["preview_url"], self.audio_dir)).unlink(missing_ok=True)

    async def process_texts(self) -> int:
        """Embed vibe texts that API processes without a model have queued."""
        try:
            from haunt_fm.pipeline.recommendations.vibe import process_pending_texts
        except ImportError:  # the vibe stage is not installed
            return 0
        try:
            return int(await process_pending_texts(self.sessions, self.embedder, limit=32) or 0)
        except Exception as exc:
            log.exception("embedding vibe texts failed")
            self._set_error(f"vibe text embedding failed: {type(exc).__name__}: {exc}")
            return 0

    # -- state --------------------------------------------------------------------------
    def _set_error(self, message: str) -> None:
        self.state = "error"
        self.last_error = message

    async def _idle(self, seconds: float, *, texts: bool = True) -> None:
        """Sleep between batches, answering vibe-text requests and heart-beating meanwhile."""
        loop = asyncio.get_running_loop()
        until = loop.time() + max(seconds, 0.0)
        if self.state == "working":
            self.state = "idle"
        await self.heartbeat()
        while loop.time() < until:
            await asyncio.sleep(min(TEXT_POLL_SECONDS, max(until - loop.time(), 0.0)))
            if texts and self.embedder is not None:
                await self.process_texts()
            await self.heartbeat()

    async def heartbeat(self, *, force: bool = False) -> None:
        """Publish this worker's state to worker_states (for /api/status)."""
        now = asyncio.get_running_loop().time()
        if not force and now - self._last_heartbeat < HEARTBEAT_SECONDS:
            return
        self._last_heartbeat = now
        state = {
            "id": self.id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "state": self.state,
            "model": self.settings.clap_model,
            "model_loaded": self.embedder is not None,
            "text_tower_ok": self.text_tower_ok,
            "details": json.dumps(
                {
                    "text_tower_note": self.text_tower_note,
                    "embedding_runtime": getattr(self.embedder, "runtime_details", None),
                }
            ),
            "last_batch_at": self.last_batch_at,
            "last_error": self.last_error,
            "tracks_done": self.tracks_done,
        }
        try:
            async with transaction(self.sessions) as session:
                await repo.heartbeat(session, state=state)
        except Exception:  # status reporting must never stop the work
            log.warning("could not record the worker heartbeat", exc_info=True)
