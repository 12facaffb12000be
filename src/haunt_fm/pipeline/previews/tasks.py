"""The preview lookup loop: claim tracks with a lease, search iTunes at the configured rate,
record the outcome. Runs inside `serve` (HAUNTFM_PREVIEW_WORKER_ENABLED); any number of
processes can share one database (claims use FOR UPDATE SKIP LOCKED, leases expire when a
process dies, and only the lease holder records an outcome).

Several lookups run at once so that the rate limit, not the service's latency, sets the pace;
they share one limiter per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import Counter
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.clients._http import Limiter
from haunt_fm.clients.itunes import ItunesClient
from haunt_fm.config import Settings
from haunt_fm.db.base import utcnow
from haunt_fm.db.session import transaction
from haunt_fm.pipeline.discovery.limits import shared_limiter
from haunt_fm.pipeline.previews import repository as repo
from haunt_fm.pipeline.previews import service
from haunt_fm.pipeline.previews.repository import Claimed

log = logging.getLogger(__name__)

PREVIEW_CONCURRENCY = 4
# Idle workers look for new tracks this often (discovery in this process wakes them at once).
POLL_SECONDS = 2.0
# Longer than a lookup can take: a wait in the limiter queue plus the client's own retries.
LEASE_SECONDS = 600.0
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 60.0
RETRY_MAX_SECONDS = 3600.0
FAILED_RETRY_SECONDS = 86_400.0
# After the client's retries gave up on a throttle, everyone in this process waits this long.
THROTTLE_PAUSE_SECONDS = 60.0
REQUEUE_EVERY_SECONDS = 60.0

_INSTANCES: weakref.WeakSet[PreviewLookup] = weakref.WeakSet()


def notify_new_work() -> None:
    """Wake this process's idle preview loops (new tracks were queued); others poll."""
    for instance in list(_INSTANCES):
        instance.wake()


class PreviewLookup:
    """The preview lookup stage of one process."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient | None = None,
        client: ItunesClient | None = None,
        limiter: Limiter | None = None,
        concurrency: int = PREVIEW_CONCURRENCY,
        poll_seconds: float = POLL_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
        retry_max_seconds: float = RETRY_MAX_SECONDS,
        failed_retry_seconds: float = FAILED_RETRY_SECONDS,
        throttle_pause_seconds: float = THROTTLE_PAUSE_SECONDS,
    ) -> None:
        self.settings = settings
        self.sessions = session_factory
        self.http = http
        self._client = client
        self._limiter = limiter
        self.concurrency = max(1, concurrency)
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.max_attempts = max(1, max_attempts)
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.failed_retry_seconds = failed_retry_seconds
        self.not_found_retry_seconds = settings.preview_not_found_retry_days * 86_400.0
        self.throttle_pause_seconds = throttle_pause_seconds
        self.stats: Counter[str] = Counter()
        self.in_flight = 0
        self.last_error: str | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_requeue = float("-inf")
        _INSTANCES.add(self)

    # -- lifecycle ----------------------------------------------------------------------
    def _bind(self) -> None:
        """Create the client, limiter and wake-up event on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._limiter is None and self._client is not None:
            # A client handed in brings its own limiter: throttle pauses must reach that one.
            self._limiter = getattr(self._client, "_limiter", None)
        if self._limiter is None:
            self._limiter = shared_limiter(
                "itunes", rate=self.settings.itunes_rate_per_minute, per=60.0, sessions=self.sessions
            )
        if self._client is None:
            self._client = ItunesClient(
                self.settings.itunes_api_url,
                country=self.settings.itunes_country,
                http=self.http,
                limiter=self._limiter,
            )

    @property
    def client(self) -> ItunesClient:
        assert self._client is not None, "the loop is not running"
        return self._client

    def wake(self) -> None:
        """Cut an idle wait short (safe to call from any thread)."""
        loop, event = self._loop, self._wake
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    async def run_forever(self) -> None:
        """Look up previews until cancelled; never raises on a bad answer or a database hiccup."""
        self._bind()
        workers = [
            asyncio.create_task(self._worker(), name=f"preview-lookup-{i}") for i in range(self.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            for task in workers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def run_until_idle(self, *, seconds: float) -> dict[str, int]:
        """Run until no track is pending (nothing in flight) or `seconds` pass; returns counts."""
        self._bind()
        workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(min(0.05, self.poll_seconds))
                if self.in_flight == 0 and await self._pending() == 0:
                    break
        finally:
            for task in workers:
                task.cancel()
            for task in workers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        return dict(self.stats) | {"pending": await self._pending()}

    async def _pending(self) -> int:
        async with transaction(self.sessions) as session:
            return await repo.pending_count(session)

    # -- the loop -----------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            try:
                await self._requeue_if_due()
                async with transaction(self.sessions) as session:
                    claimed = await repo.claim(session, limit=1, lease_seconds=self.lease_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: say so, wait, try again
                log.exception("preview lookup: claim failed")
                self.last_error = f"claim failed: {type(exc).__name__}: {exc}"
                await self._idle()
                continue
            if not claimed:
                await self._idle()
                continue
            for item in claimed:
                await self._handle(item)

    async def _idle(self) -> None:
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    async def _requeue_if_due(self) -> None:
        now = time.monotonic()
        if now - self._last_requeue < REQUEUE_EVERY_SECONDS:
            return
        self._last_requeue = now
        async with transaction(self.sessions) as session:
            requeued = await repo.requeue_due(session)
        if requeued:
            log.info("preview lookup: %d not-found or failed tracks queued again", requeued)

    async def _handle(self, item: Claimed) -> None:
        self.in_flight += 1
        try:
            try:
                outcome = await service.lookup(self.client, artist=item.artist, title=item.title)
            except asyncio.CancelledError:
                # Shutting down: hand the lease back now rather than after it expires.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._release(item))
                raise
            except Exception as exc:  # a bug or an unexpected answer: retry later, keep the loop alive
                log.exception("preview lookup failed for track %s", item.id)
                outcome = service.Outcome("retry", f"lookup failed: {type(exc).__name__}: {exc}")
            try:
                await asyncio.shield(self._record(item, outcome))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("preview lookup: could not record the outcome for track %s", item.id)
                self.last_error = f"could not record an outcome: {type(exc).__name__}: {exc}"
        finally:
            self.in_flight -= 1

    async def _release(self, item: Claimed, delay: float = 0.0) -> None:
        async with transaction(self.sessions) as session:
            await repo.release(session, item=item, delay_seconds=delay)

    async def _record(self, item: Claimed, outcome: service.Outcome) -> None:
        now = utcnow().isoformat()
        self.stats[outcome.kind] += 1
        async with transaction(self.sessions) as session:
            state: dict[str, Any] = {"last_lookup_at": now}
            if outcome.kind == "found":
                assert outcome.match is not None
                held = await repo.record_found(session, item=item, values=service.found_values(outcome.match))
                state["last_error"] = None
            elif outcome.kind == "not_found":
                held = await repo.record_not_found(
                    session,
                    item=item,
                    error=outcome.message or "not found",
                    retry_seconds=self.not_found_retry_seconds,
                )
                state["last_error"] = None
            elif outcome.kind == "throttled":
                # Not the track's fault: it stays pending, the attempt does not count, and the
                # whole process slows down (Apple throttles by address).
                assert self._limiter is not None
                self._limiter.pause(self.throttle_pause_seconds)
                await repo.release(session, item=item)
                held = True
                state = {"last_error": outcome.message, "last_error_at": now}
                log.warning("preview lookup: %s; pausing %.0fs", outcome.message, self.throttle_pause_seconds)
            else:
                failed = outcome.kind == "failed" or item.attempts >= self.max_attempts
                delay = (
                    self.failed_retry_seconds
                    if failed
                    else service.retry_delay(
                        item, base_seconds=self.retry_base_seconds, max_seconds=self.retry_max_seconds
                    )
                )
                message = outcome.message or "lookup failed"
                if failed:
                    message = f"{message} (after {item.attempts} attempt(s); tried again later)"
                    self.stats["gave_up"] += 1
                held = await repo.record_retry(
                    session, item=item, error=message, retry_seconds=delay, failed=failed
                )
                state = {"last_error": message, "last_error_at": now}
            if held:
                await repo.merge_state(session, state)
            else:
                self.stats["lease_lost"] += 1
        if outcome.kind not in ("found", "not_found"):
            self.last_error = outcome.message
