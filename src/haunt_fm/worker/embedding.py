"""The embedding worker: CLAP vectors for tracks' previews and for vibe texts, on the lease queue.

Runs inside `serve` or alone as `haunt-fm worker`; any number of workers on any number of
machines can share one database. Two stages, one model: vibe texts (`TEXT_STAGE`, small,
someone is waiting) go before each batch of tracks (`EMBEDDING_STAGE`). Claims are leased
and the leases renewed by a heartbeat while a batch runs (`haunt_fm.queue`), so a batch may
take as long as it needs and a worker that dies lets its tracks go within one lease.
Inference runs on one thread of its own, never on the event loop.

Loading the model (the first start downloads ~800 MB from the Hugging Face hub) runs on a
daemon thread while the loop keeps heart-beating with the download's progress (state
`loading`); a worker that is stopped meanwhile leaves without waiting for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm import queue
from haunt_fm.config import Settings
from haunt_fm.db.session import transaction
from haunt_fm.pipeline.embeddings import repository as repo
from haunt_fm.pipeline.embeddings.audio import (
    SILENT_REASON,
    AudioDecodeError,
    AudioDownloadError,
    cache_path_for,
    decode_audio,
    download_preview,
    is_silent,
)
from haunt_fm.pipeline.embeddings.download import DownloadProgress
from haunt_fm.pipeline.embeddings.models import EMBEDDING_STAGE, HEARTBEAT_SECONDS, TEXT_STAGE, TEXTS_DONE
from haunt_fm.pipeline.embeddings.vectors import unit_rows
from haunt_fm.queue import Claim, Expiry, Held, StageRunner, Wakeups, hold, worker_id
from haunt_fm.retry import RetryPolicy

log = logging.getLogger(__name__)

# Without LISTEN (no wake-ups), an idle worker looks for vibe texts this often.
TEXT_POLL_SECONDS = 0.5
TEXT_BATCH = 32
TEXT_MAX_ATTEMPTS = 3
MODEL_RETRY = RetryPolicy(
    max_attempts=1_000_000, base_delay=30.0, multiplier=2.0, max_delay=900.0, jitter=0.1
)
# While the model loads, the heartbeat (with the download's progress) goes out this often,
# and the progress is logged this often.
LOADING_HEARTBEAT_SECONDS = 2.0
DOWNLOAD_LOG_SECONDS = 5.0
DOWNLOAD_CONCURRENCY = 4
DOWNLOAD_TIMEOUT_SECONDS = 30.0
PREVIEW_GONE = (404, 410)


@dataclass(slots=True)
class _Prepared:
    """A batch ready for the model: decoded previews, their model inputs, and what failed."""

    ready: list[tuple[Claim, np.ndarray]]
    failures: list[tuple[Claim, str, bool, int | None]]
    inputs: Any  # AudioInputs when the embedder offers audio_inputs, else None
    started: float


@dataclass(slots=True)
class _Batch:
    """A claimed batch whose leases are held while it is prepared, embedded and stored."""

    claims: list[Claim]
    held: Held
    stack: contextlib.AsyncExitStack
    prepare: asyncio.Future[_Prepared]

    async def close(self) -> None:
        await self.stack.aclose()


class EmbeddingWorker:
    """One worker process's loop; `state` is loading, idle, working or error."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        wakeups: Wakeups | None = None,
        load_embedder: Callable[[], Any] | None = None,
        on_model_loaded: Callable[[Any], None] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = session_factory
        self.http = http
        self.wakeups = wakeups
        self.id = worker_id()
        self.state = "idle"
        self.last_error: str | None = None
        self.last_batch_at: datetime | None = None
        self.tracks_done = 0
        self.embedder: Any = None
        self.text_tower_ok: bool | None = None
        self.text_tower_note: str | None = None
        # While the model loads: the hub download's bytes (the default loader reports them here).
        self.download: DownloadProgress | None = None
        # After a failed load: when the next attempt comes.
        self.next_retry_at: datetime | None = None
        self._load_embedder = load_embedder or self._default_loader
        self._on_model_loaded = on_model_loaded
        # One model, one inference thread: batches never run on the event loop. One prepare thread
        # decodes and computes features for the next batch meanwhile (never more: two cores).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clap")
        self._prepare_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
        self._load_failures = 0
        self._retry_delay = 0.0
        self._last_heartbeat = 0.0
        self.audio_dir = settings.resolved_audio_cache_dir
        self.retry_policy = RetryPolicy(
            max_attempts=settings.embedding_max_attempts, base_delay=60.0, max_delay=3600.0
        )
        self.tracks = StageRunner(
            sessions=session_factory,
            stage=EMBEDDING_STAGE,
            batch=settings.embedding_batch_size,
            lease_seconds=settings.embedding_lease_seconds,
            max_attempts=settings.embedding_max_attempts,
            idle_seconds=settings.embedding_interval_seconds,
            wakeups=wakeups,
            owner=self.id,
            expiry=Expiry(
                f"The worker stopped or crashed {settings.embedding_max_attempts} times while embedding "
                "this preview (out of memory, a decoder crash?); it is not tried again."
            ),
        )
        self.texts = StageRunner(
            sessions=session_factory,
            stage=TEXT_STAGE,
            batch=TEXT_BATCH,
            lease_seconds=settings.embedding_lease_seconds,
            max_attempts=TEXT_MAX_ATTEMPTS,
            idle_seconds=TEXT_POLL_SECONDS,
            wakeups=wakeups,
            owner=self.id,
        )

    # -- lifecycle ----------------------------------------------------------------------
    def _default_loader(self) -> Any:
        from haunt_fm.pipeline.embeddings.model import ClapEmbedder, hub_cache_dir

        settings = self.settings
        return ClapEmbedder.load(
            settings.clap_model,
            cache_dir=settings.resolved_model_cache_dir,
            hub_cache_dir=hub_cache_dir(
                settings.clap_model, configured=settings.model_cache_dir, earlier=settings.data_dir / "models"
            ),
            torch_threads=settings.torch_threads,
            runtime=settings.embedding_runtime,
            progress=self.download,
        )

    async def run_forever(self) -> None:
        """Load the model, then embed texts and batches until cancelled. Never raises on bad input."""
        try:
            while True:
                if self.embedder is None and not await self.load_model():
                    await self._wait_for_retry()
                    continue
                try:
                    done = await self.process_texts() + await self.run_batches()
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
            self._prepare_executor.shutdown(wait=False, cancel_futures=True)

    async def load_model(self) -> bool:
        """Load the CLAP model off the event loop (state `loading`); on failure record state `error`
        and when the next attempt comes."""
        from haunt_fm.pipeline.embeddings.model import PIPELINE_VERSION, ModelUnavailable

        model = self.settings.clap_model
        self.state, self.next_retry_at = "loading", None
        download = self.download = DownloadProgress()
        log.info("loading the CLAP model %s (HAUNTFM_CLAP_MODEL)", model)
        await self.heartbeat(force=True)
        failure: str | None = None
        try:
            embedder, (ok, note) = await self._while_loading(self._load_and_check)
        except ModelUnavailable as exc:
            failure = str(exc)
            log.error("%s", exc)
        except Exception as exc:
            failure = (
                f"could not load the CLAP model {model!r} (HAUNTFM_CLAP_MODEL): {type(exc).__name__}: {exc}"
            )
            log.exception("model load failed")
        finally:
            self.download = None
        if failure is not None:
            self._load_failed(failure)
            await self.heartbeat(force=True)
            return False
        if (fetched := download.snapshot()) is not None:
            log.info("downloaded %s: %d MB", model, int(fetched["done"] or 0) // 1_000_000)
        self.embedder = embedder
        self.text_tower_ok, self.text_tower_note = bool(ok), note
        if not ok:
            log.warning("%s", note)
        self._load_failures = 0
        self.state, self.last_error, self.next_retry_at = "idle", None, None
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

    def _load_and_check(self) -> tuple[Any, tuple[bool, str]]:
        """Load the model and check its text tower (runs on the loading thread)."""
        embedder = self._load_embedder()
        return embedder, embedder.text_tower_check()

    async def _while_loading(self, load: Callable[[], Any]) -> Any:
        """Run `load` on a daemon thread of its own, heart-beating (with the download's progress)
        and logging that progress until it ends.

        Not on the inference executor: the interpreter joins executor threads at exit, so
        Ctrl-C or SIGTERM would wait for the whole download. A daemon thread is dropped at
        exit, and a worker cancelled meanwhile does not wait for it.
        """
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            if not result.set_running_or_notify_cancel():
                return
            try:
                value = load()
            except BaseException as exc:  # handed to the event loop, which re-raises it
                result.set_exception(exc)
            else:
                result.set_result(value)

        threading.Thread(target=run, name="clap-load", daemon=True).start()
        waiting = asyncio.wrap_future(result)
        loop = asyncio.get_running_loop()
        logged = loop.time()
        try:
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=LOADING_HEARTBEAT_SECONDS)
                if waiting.done():
                    break
                await self.heartbeat(force=True)
                progress = self.download.describe(self.settings.clap_model) if self.download else None
                if progress is not None and loop.time() - logged >= DOWNLOAD_LOG_SECONDS:
                    logged = loop.time()
                    log.info("%s", progress)
            return waiting.result()
        finally:
            waiting.cancel()  # stopped mid-load: the thread's late outcome goes nowhere

    def _load_failed(self, message: str) -> None:
        self._load_failures += 1
        self._retry_delay = MODEL_RETRY.delay(self._load_failures)
        self.next_retry_at = datetime.now(UTC) + timedelta(seconds=self._retry_delay)
        self._set_error(message)
        log.info("next attempt to load the model at %s", self.next_retry_at.isoformat(timespec="seconds"))

    async def _wait_for_retry(self) -> None:
        """Sit out the delay after a failed load, heart-beating; new work doesn't cut it short, so the
        status's `next_retry_at` holds."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self._retry_delay
        while (left := until - loop.time()) > 0:
            await asyncio.sleep(min(HEARTBEAT_SECONDS, left))
            await self.heartbeat()

    # -- one round ----------------------------------------------------------------------
    async def run_once(self) -> int:
        """Embed pending vibe texts and one batch of tracks; returns how many items were handled."""
        if self.embedder is None:
            return 0
        handled = await self.process_texts()
        claimed = await self.tracks.run_once(self._embed_tracks)
        if claimed:
            self.last_batch_at = datetime.now(UTC)
            self.state = "idle"
            await self.heartbeat(force=True)
        return handled + claimed

    async def _embed_tracks(self, claims: list[Claim], held: Held) -> None:
        """One batch, start to end: prepare, infer, store (run_once; run_forever overlaps batches)."""
        prepared = await self._prepare(claims)
        await self._store(prepared, await self._infer(prepared), held)

    async def run_batches(self) -> int:
        """Embed batches back to back until none is left; returns how many tracks were claimed.

        While one batch is in inference, the next is claimed and its previews downloaded,
        decoded and turned into model features (one prepare thread), so the model never waits
        for the network or the decoder. At most one batch is prepared ahead.
        """
        claimed = 0
        upcoming = await self._begin_batch()
        try:
            while upcoming is not None:
                current, upcoming = upcoming, None
                try:
                    prepared = await current.prepare
                    inference = asyncio.ensure_future(self._infer(prepared))
                    try:
                        upcoming = await self._begin_batch()
                    finally:
                        result = await inference
                    await self._store(prepared, result, current.held)
                finally:
                    await current.close()
                claimed += len(current.claims)
                self.last_batch_at = datetime.now(UTC)
                # Vibe texts someone is waiting for go between batches.
                await self.process_texts()
        finally:
            if upcoming is not None:
                upcoming.prepare.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await upcoming.prepare
                await upcoming.close()
        if claimed:
            self.state = "idle"
            await self.heartbeat(force=True)
        return claimed

    async def _begin_batch(self) -> _Batch | None:
        """Claim a batch, hold its leases, and start preparing it; None when there is no work."""
        claims = await self.tracks.claim()
        if not claims:
            return None
        stack = contextlib.AsyncExitStack()
        held = await stack.enter_async_context(
            hold(self.sessions, EMBEDDING_STAGE, claims, lease_seconds=self.tracks.lease_seconds)
        )
        return _Batch(claims, held, stack, asyncio.ensure_future(self._prepare(claims)))

    async def _prepare(self, claims: list[Claim]) -> _Prepared:
        """Download the previews (4 at a time), then decode them and compute model features on the
        prepare thread (one thread: it must not crowd out inference on a small machine)."""
        started = time.monotonic()
        self.state = "working"
        await self.heartbeat(force=True)
        semaphore = asyncio.Semaphore(DOWNLOAD_CONCURRENCY)
        loop = asyncio.get_running_loop()

        async def fetch(item: Claim) -> tuple[Claim, Path | None, str | None, bool, int | None]:
            async with semaphore:
                try:
                    path = await download_preview(
                        self.http,
                        item["preview_url"],
                        self.audio_dir,
                        max_bytes=self.settings.max_preview_bytes,
                        timeout=DOWNLOAD_TIMEOUT_SECONDS,
                    )
                except AudioDownloadError as exc:
                    return item, None, str(exc), exc.transient, exc.status_code
                return item, path, None, False, None

        fetched = await asyncio.gather(*(fetch(item) for item in claims))
        failures = [
            (item, error or "", transient, status)
            for item, path, error, transient, status in fetched
            if path is None
        ]
        downloaded = [(item, path) for item, path, *_ in fetched if path is not None]
        ready, more_failures, inputs = await loop.run_in_executor(
            self._prepare_executor, self._decode, downloaded
        )
        return _Prepared(ready=ready, failures=failures + more_failures, inputs=inputs, started=started)

    def _decode(
        self, downloaded: list[tuple[Claim, Path]]
    ) -> tuple[list[tuple[Claim, np.ndarray]], list[tuple[Claim, str, bool, int | None]], Any]:
        """Decode previews and build the model's inputs (runs on the prepare thread)."""
        ready: list[tuple[Claim, np.ndarray]] = []
        failures: list[tuple[Claim, str, bool, int | None]] = []
        for item, path in downloaded:
            try:
                samples = decode_audio(path)
            except AudioDecodeError as exc:
                failures.append((item, f"could not decode the preview: {exc}", False, None))
                continue
            finally:
                # The file is not needed once decoded, whatever follows. Dropping it here, and
                # only here, keeps the batch in inference from deleting a file that the batch
                # being prepared shares (two tracks, one preview URL); a retry downloads again.
                self._drop_cached(item)
            if samples.size == 0:
                failures.append((item, "the preview holds no audio", False, None))
            elif is_silent(samples):
                failures.append((item, SILENT_REASON, False, None))
            else:
                ready.append((item, samples))
        inputs = None
        audio_inputs = getattr(self.embedder, "audio_inputs", None)
        if ready and audio_inputs is not None:
            try:
                inputs = audio_inputs([samples for _, samples in ready])
            except Exception:  # left to embed_audio, which reports the error per batch
                log.exception("computing model features failed")
        return ready, failures, inputs

    async def _infer(self, prepared: _Prepared) -> tuple[np.ndarray | None, list[int], str | None]:
        """Run the model on the inference thread: (vectors, windows per track, error)."""
        if not prepared.ready:
            return None, [], None
        loop = asyncio.get_running_loop()
        try:
            if prepared.inputs is not None:
                result = await loop.run_in_executor(
                    self._executor, self.embedder.embed_inputs, prepared.inputs
                )
            else:
                waveforms = [s for _, s in prepared.ready]
                result = await loop.run_in_executor(self._executor, self.embedder.embed_audio, waveforms)
        except Exception as exc:
            log.exception("CLAP inference failed")
            return None, [], f"embedding failed: {type(exc).__name__}: {exc}"
        return result[0], list(result[1]), None

    async def _store(
        self, prepared: _Prepared, result: tuple[np.ndarray | None, list[int], str | None], held: Held
    ) -> None:
        from haunt_fm.pipeline.embeddings.model import PIPELINE_VERSION

        vectors, counts, error = result
        ready, failures = prepared.ready, list(prepared.failures)
        if error is not None:
            failures += [(item, error, True, None) for item, _ in ready]
            ready = []
        stored = 0
        async with transaction(self.sessions) as session:
            for i, (item, _) in enumerate(ready):
                assert vectors is not None
                if await queue.complete(session, EMBEDDING_STAGE, item):
                    await repo.store_vector(
                        session,
                        track_id=item.key,
                        vector=vectors[i],
                        model=self.embedder.model_id,
                        pipeline_version=PIPELINE_VERSION,
                        windows=counts[i],
                        runtime=getattr(self.embedder, "runtime", None),
                    )
                    stored += 1
            for item, message, transient, status in failures:
                await self._record_failure(session, item, message or "unknown error", transient, status)
        self.tracks_done += stored
        if failures and not ready:
            self.last_error = failures[-1][1]
        lost = len(held.lost)
        took = time.monotonic() - prepared.started
        log.info(
            "embedding batch: %d stored, %d failed or retried%s; %.2f s per preview",
            stored,
            len(failures),
            f", {lost} taken over by another worker" if lost else "",
            took / max(1, stored + len(failures)),
        )

    async def _record_failure(
        self, session: AsyncSession, item: Claim, error: str, transient: bool, status: int | None
    ) -> None:
        exhausted = self.retry_policy.gives_up_after(item.attempts)
        if status in PREVIEW_GONE and not exhausted:
            # iTunes preview URLs expire: find the current one rather than give up.
            if await queue.fail(session, EMBEDDING_STAGE, item, error=error, status="waiting"):
                await repo.back_to_previews(session, track_id=item.key)
            return
        if transient and not exhausted:
            await queue.retry(
                session, EMBEDDING_STAGE, item, error=error, delay=self.retry_policy.delay(item.attempts)
            )
            return
        await queue.fail(session, EMBEDDING_STAGE, item, error=error)
        log.warning("track %s (%s - %s) failed: %s", item.key, item["artist"], item["title"], error)

    def _drop_cached(self, item: Claim) -> None:
        with contextlib.suppress(OSError):
            Path(cache_path_for(item["preview_url"], self.audio_dir)).unlink(missing_ok=True)

    # -- vibe texts ---------------------------------------------------------------------
    async def process_texts(self) -> int:
        """Embed vibe texts that API processes without a model have queued; returns how many."""
        if self.embedder is None:
            return 0
        try:
            return await self.texts.run_once(self._embed_texts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("embedding vibe texts failed")
            self._set_error(f"vibe text embedding failed: {type(exc).__name__}: {exc}")
            return 0

    async def _embed_texts(self, claims: list[Claim], held: Held) -> None:
        norms = [str(c.key) for c in claims]
        loop = asyncio.get_running_loop()
        try:
            raw = await loop.run_in_executor(self._executor, self.embedder.embed_text, norms)
            vectors = unit_rows(raw, len(norms))
        except Exception as exc:
            log.exception("embedding %d vibe text(s) failed", len(norms))
            async with transaction(self.sessions) as session:
                for claim in claims:
                    await queue.fail(session, TEXT_STAGE, claim, error=f"{type(exc).__name__}: {exc}"[:500])
                await queue.notify(session, TEXTS_DONE)
            return
        model = getattr(self.embedder, "model_id", None)
        async with transaction(self.sessions) as session:
            for claim, vector in zip(claims, vectors, strict=True):
                if await queue.complete(session, TEXT_STAGE, claim):
                    await repo.store_claimed_text(
                        session, text_norm=str(claim.key), embedding=vector, model=model
                    )
            await queue.notify(session, TEXTS_DONE)

    # -- state --------------------------------------------------------------------------
    def _set_error(self, message: str) -> None:
        self.state = "error"
        self.last_error = message

    async def _idle(self, seconds: float, *, texts: bool = True) -> None:
        """Wait for work (a NOTIFY or the interval), answering vibe texts and heart-beating meanwhile."""
        loop = asyncio.get_running_loop()
        until = loop.time() + max(seconds, 0.0)
        if self.state == "working":
            self.state = "idle"
        await self.heartbeat()
        listening = self.wakeups is not None and self.wakeups.listening
        step = HEARTBEAT_SECONDS if listening else TEXT_POLL_SECONDS
        while (left := until - loop.time()) > 0:
            woke = await self._wait_for(
                ("embeddings", "texts") if texts else ("embeddings",), min(step, left)
            )
            if texts and self.embedder is not None and (woke == "texts" or not listening):
                await self.process_texts()
            await self.heartbeat()
            if woke == "embeddings":
                return

    async def _wait_for(self, stages: tuple[str, ...], seconds: float) -> str | None:
        if self.wakeups is None:
            await asyncio.sleep(seconds)
            return None
        return await self.wakeups.wait_any(stages, seconds)

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
            "details": repo.details_json(
                {
                    "text_tower_note": self.text_tower_note,
                    "embedding_runtime": getattr(self.embedder, "runtime_details", None),
                    "download": self.download.snapshot() if self.download is not None else None,
                    "next_retry_at": self.next_retry_at.isoformat() if self.next_retry_at else None,
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
