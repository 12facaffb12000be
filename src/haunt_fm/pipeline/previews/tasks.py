"""The preview lookup loop: claim tracks on the lease queue, search iTunes at the shared rate,
settle the outcome. Runs inside `serve` (HAUNTFM_PREVIEW_WORKER_ENABLED); any number of
processes can share one database (see `haunt_fm.queue`).

Several lookups run at once so that the rate limit, not the service's latency, sets the
pace; they share the limiter every process on the database shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm import queue
from haunt_fm.clients._http import Limiter
from haunt_fm.clients.itunes import ItunesClient
from haunt_fm.config import Settings
from haunt_fm.db.base import utcnow
from haunt_fm.db.rate_limits import shared_limiter
from haunt_fm.db.session import transaction
from haunt_fm.pipeline.previews import repository as repo
from haunt_fm.pipeline.previews import service
from haunt_fm.pipeline.previews.models import PREVIEW_STAGE
from haunt_fm.queue import Claim, Expiry, Held, StageRunner, Wakeups
from haunt_fm.retry import RetryPolicy

log = logging.getLogger(__name__)

PREVIEW_CONCURRENCY = 4
# Idle lookups look for new tracks this often (a NOTIFY wakes them at once).
POLL_SECONDS = 5.0
# Renewed by the heartbeat while a lookup waits in the limiter queue and retries.
LEASE_SECONDS = 60.0
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 60.0
RETRY_MAX_SECONDS = 3600.0
FAILED_RETRY_SECONDS = 86_400.0
# After the client's retries gave up on a throttle, everyone sharing the limiter waits this long.
THROTTLE_PAUSE_SECONDS = 60.0
REQUEUE_EVERY_SECONDS = 60.0
LOG_EVERY_SECONDS = 60.0


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
        wakeups: Wakeups | None = None,
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
        self.retry = RetryPolicy(
            max_attempts=max(1, max_attempts), base_delay=retry_base_seconds, max_delay=retry_max_seconds
        )
        self.failed_retry_seconds = failed_retry_seconds
        self.not_found_retry_seconds = settings.preview_not_found_retry_days * 86_400.0
        self.throttle_pause_seconds = throttle_pause_seconds
        self.runner = StageRunner(
            sessions=session_factory,
            stage=PREVIEW_STAGE,
            batch=1,
            lease_seconds=lease_seconds,
            max_attempts=self.retry.max_attempts,
            idle_seconds=poll_seconds,
            wakeups=wakeups,
            expiry=Expiry(
                f"The lookup stopped or crashed {self.retry.max_attempts} times on this track; "
                "tried again later.",
                next_at=lambda: datetime.now(UTC) + timedelta(seconds=self.failed_retry_seconds),
            ),
        )
        self.stats: Counter[str] = Counter()
        self.in_flight = 0
        self.last_error: str | None = None
        self._last_requeue = float("-inf")
        self._last_log = time.monotonic()
        self._logged: Counter[str] = Counter()

    # -- lifecycle ----------------------------------------------------------------------
    def _bind(self) -> None:
        """Create the client and limiter (on the running loop)."""
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
                await asyncio.sleep(0.05)
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
            return await queue.pending_count(session, PREVIEW_STAGE)

    # -- the loop -----------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            try:
                await self._requeue_if_due()
                handled = await self.runner.run_once(self._handle)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: say so, wait, try again
                log.exception("preview lookup: batch failed")
                self.last_error = f"claim failed: {type(exc).__name__}: {exc}"
                await self.runner.idle(min(self.runner.idle_seconds, 5.0))
                continue
            self._log_progress()
            if not handled:
                await self.runner.idle()

    async def _requeue_if_due(self) -> None:
        now = time.monotonic()
        if now - self._last_requeue < REQUEUE_EVERY_SECONDS:
            return
        self._last_requeue = now
        async with transaction(self.sessions) as session:
            requeued = await repo.requeue_due(session)
        if requeued:
            log.info("preview lookup: %d not-found or failed tracks queued again", requeued)

    def _log_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_log < LOG_EVERY_SECONDS:
            return
        self._last_log = now
        delta = self.stats - self._logged
        self._logged = Counter(self.stats)
        if delta:
            parts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(delta.items()))
            log.info("preview lookup, last minute: %s", parts)

    async def _handle(self, claims: list[Claim], held: Held) -> None:
        for item in claims:
            self.in_flight += 1
            try:
                try:
                    outcome = await service.lookup(self.client, artist=item["artist"], title=item["title"])
                except asyncio.CancelledError:
                    raise  # the hold hands the lease back
                except Exception as exc:  # a bug or an unexpected answer: retry later, keep the loop alive
                    log.exception("preview lookup failed for track %s", item.key)
                    outcome = service.Outcome("retry", f"lookup failed: {type(exc).__name__}: {exc}")
                try:
                    await asyncio.shield(self._record(item, outcome))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.exception("preview lookup: could not record the outcome for track %s", item.key)
                    self.last_error = f"could not record an outcome: {type(exc).__name__}: {exc}"
            finally:
                self.in_flight -= 1

    async def _record(self, item: Claim, outcome: service.Outcome) -> None:
        now = utcnow()
        self.stats[outcome.kind] += 1
        stage = PREVIEW_STAGE
        async with transaction(self.sessions) as session:
            state: dict[str, Any] = {"last_lookup_at": now.isoformat()}
            if outcome.kind == "found":
                assert outcome.match is not None
                held = await queue.complete(session, stage, item, status="found")
                if held:
                    await repo.store_found(
                        session, track_id=item.key, values=service.found_values(outcome.match)
                    )
                state["last_error"] = None
            elif outcome.kind == "not_found":
                retry_at = now + timedelta(seconds=self.not_found_retry_seconds)
                held = await queue.fail(
                    session,
                    stage,
                    item,
                    error=outcome.message or "not found",
                    status="not_found",
                    next_at=retry_at,
                )
                if held:
                    await repo.mark_checked(session, track_id=item.key)
                state["last_error"] = None
            elif outcome.kind == "throttled":
                # Not the track's fault: it stays pending, the attempt does not count, and every
                # process sharing the limiter slows down (Apple throttles by address).
                assert self._limiter is not None
                self._limiter.pause(self.throttle_pause_seconds)
                await queue.release(session, stage, [item])
                held = True
                state = {"last_error": outcome.message, "last_error_at": now.isoformat()}
                log.warning("preview lookup: %s; pausing %.0fs", outcome.message, self.throttle_pause_seconds)
            else:
                failed = outcome.kind == "failed" or self.retry.gives_up_after(item.attempts)
                message = outcome.message or "lookup failed"
                if failed:
                    message = f"{message} (after {item.attempts} attempt(s); tried again later)"
                    self.stats["gave_up"] += 1
                    retry_at = now + timedelta(seconds=self.failed_retry_seconds)
                    held = await queue.fail(session, stage, item, error=message, next_at=retry_at)
                else:
                    delay = self.retry.delay(item.attempts)
                    held = await queue.retry(session, stage, item, error=message, delay=delay)
                if held:
                    await repo.mark_checked(session, track_id=item.key)
                state = {"last_error": message, "last_error_at": now.isoformat()}
            if held:
                await repo.merge_state(session, state)
            else:
                self.stats["lease_lost"] += 1
        if outcome.kind not in ("found", "not_found"):
            self.last_error = outcome.message
