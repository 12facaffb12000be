"""The tags stage: Last.fm `track.getTopTags` for every track, on the lease queue; and the
`tag.getTopTracks` lookups vibes queue as jobs.

`TagFetcher` runs inside `serve` when a Last.fm key is configured. It claims tracks whose
tags are due (`TAGS_STAGE`: listened first, then candidates by discovery score; a NOTIFY
`tags` from listens and discovery wakes it), asks Last.fm at the rate every process on the
database shares, stores the normalised tags with their weights and settles the track as
done until `HAUNTFM_TAGS_REFRESH_DAYS` have passed. Several lookups run at once so that the
rate limit, not Last.fm's latency, sets the pace.
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
from haunt_fm.clients._http import ClientError
from haunt_fm.clients.lastfm import LastfmAuthError, LastfmClient, TopTag
from haunt_fm.config import Settings
from haunt_fm.db.base import utcnow
from haunt_fm.db.session import transaction
from haunt_fm.pipeline.discovery.service import lastfm_client
from haunt_fm.pipeline.tags import repository as repo
from haunt_fm.pipeline.tags import service
from haunt_fm.pipeline.tags.models import TAG_LOOKUP_JOB, TAGS_STAGE
from haunt_fm.pipeline.tags.normalize import normalize_tags
from haunt_fm.queue import Claim, Expiry, Held, JobContext, JobKind, StageRunner, Wakeups
from haunt_fm.retry import RetryPolicy
from haunt_fm.runtime import Runtime

log = logging.getLogger(__name__)

TAGS_CONCURRENCY = 2
POLL_SECONDS = 5.0
LEASE_SECONDS = 60.0
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 60.0
RETRY_MAX_SECONDS = 3600.0
# A track whose tags could not be fetched is tried again after this long.
FAILED_RETRY_SECONDS = 86_400.0
# Last.fm rejected the key: every lookup would fail the same way; look again after this long.
AUTH_PAUSE_SECONDS = 600.0
# Last.fm said to slow down (after the client's own retries): everyone sharing the limiter waits.
THROTTLE_PAUSE_SECONDS = 60.0
REQUEUE_EVERY_SECONDS = 60.0


class TagFetcher:
    """The tags stage of one process."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient | None = None,
        client: LastfmClient | None = None,
        wakeups: Wakeups | None = None,
        concurrency: int = TAGS_CONCURRENCY,
        poll_seconds: float = POLL_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
        failed_retry_seconds: float = FAILED_RETRY_SECONDS,
        auth_pause_seconds: float = AUTH_PAUSE_SECONDS,
    ) -> None:
        self.settings = settings
        self.sessions = session_factory
        self.http = http
        self._client = client
        self.concurrency = max(1, concurrency)
        self.retry = RetryPolicy(
            max_attempts=max(1, max_attempts), base_delay=retry_base_seconds, max_delay=RETRY_MAX_SECONDS
        )
        self.refresh_seconds = settings.tags_refresh_days * 86_400.0
        self.failed_retry_seconds = failed_retry_seconds
        self.auth_pause_seconds = auth_pause_seconds
        self.runner = StageRunner(
            sessions=session_factory,
            stage=TAGS_STAGE,
            batch=1,
            lease_seconds=lease_seconds,
            max_attempts=self.retry.max_attempts,
            idle_seconds=poll_seconds,
            wakeups=wakeups,
            expiry=Expiry(
                f"The tag lookup stopped or crashed {self.retry.max_attempts} times on this track; "
                "tried again later.",
                next_at=lambda: datetime.now(UTC) + timedelta(seconds=self.failed_retry_seconds),
            ),
        )
        self.stats: Counter[str] = Counter()
        self.in_flight = 0
        self.last_error: str | None = None
        self._paused_until = float("-inf")

    @property
    def client(self) -> LastfmClient:
        if self._client is None:
            # The limiter every process on the database shares (discovery spends the same budget).
            self._client = lastfm_client(self.settings, http=self.http, sessions=self.sessions)
        return self._client

    async def run_forever(self) -> None:
        """Fetch tags until cancelled; never raises on a bad answer or a database hiccup."""
        loops = [
            self.runner.run_forever(self._handle, on_error=self._on_error) for _ in range(self.concurrency)
        ]
        await asyncio.gather(self._requeue_forever(), *loops)

    async def run_until_idle(self, *, seconds: float) -> dict[str, int]:
        """Run until no track is due (nothing in flight) or `seconds` pass; returns counts."""
        running = asyncio.create_task(self.run_forever())
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if self.in_flight == 0 and await self._due() == 0:
                    break
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        return dict(self.stats) | {"pending": await self._due()}

    async def _due(self) -> int:
        async with transaction(self.sessions) as session:
            return await queue.pending_count(session, TAGS_STAGE)

    def _on_error(self, exc: BaseException) -> None:
        self.last_error = f"claim failed: {type(exc).__name__}: {exc}"

    async def _requeue_forever(self) -> None:
        """Tracks whose refresh (or retry after a failure) is due go back in the queue, once a minute."""
        while True:
            try:
                async with transaction(self.sessions) as session:
                    requeued = await repo.requeue_due(session)
                if requeued:
                    log.info("tags: %d tracks due for a refresh (or a retry) queued again", requeued)
                    if self.runner.wakeups is not None:
                        self.runner.wakeups.poke(TAGS_STAGE.name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: the next round tries again
                log.warning("tags: could not queue due refreshes: %s", exc)
            await asyncio.sleep(REQUEUE_EVERY_SECONDS)

    async def _handle(self, claims: list[Claim], held: Held) -> None:
        for item in claims:
            self.in_flight += 1
            try:
                outcome: list[TopTag] | BaseException
                try:
                    outcome = await self.client.get_top_tags(item["artist"], item["title"])
                except asyncio.CancelledError:
                    raise  # the hold hands the lease back
                except Exception as exc:
                    outcome = exc
                await asyncio.shield(self._record(item, outcome))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("tags: could not record the outcome for track %s", item.key)
                self.last_error = f"could not record an outcome: {type(exc).__name__}: {exc}"
            finally:
                self.in_flight -= 1
        pause = self._paused_until - time.monotonic()
        if pause > 0:  # Last.fm rejected the key: no claim before the pause is over
            await asyncio.sleep(pause)

    async def _record(self, item: Claim, outcome: list[TopTag] | BaseException) -> None:
        now = utcnow()
        async with transaction(self.sessions) as session:
            if isinstance(outcome, list):
                tags = normalize_tags((t.name, t.count) for t in outcome)
                next_at = now + timedelta(seconds=self.refresh_seconds)
                if await queue.complete(session, TAGS_STAGE, item, next_at=next_at):
                    await repo.store_tags(session, track_id=item.key, tags=tags)
                    await repo.merge_state(session, {"last_fetch_at": now.isoformat(), "last_error": None})
                self.stats["fetched"] += 1
                return
            message = _message(outcome)
            self.last_error = message
            state = {"last_error": message, "last_error_at": now.isoformat()}
            if isinstance(outcome, LastfmAuthError):
                # Not the track's fault: it stays due, the attempt does not count, and this lookup
                # waits before its next claim (the others find the same and wait too).
                await queue.release(session, TAGS_STAGE, [item])
                self._paused_until = time.monotonic() + self.auth_pause_seconds
                self.stats["auth_error"] += 1
                log.error("tags: %s; pausing %.0f s", message, self.auth_pause_seconds)
            elif isinstance(outcome, ClientError) and outcome.transient:
                if getattr(outcome, "code", None) == 29:  # rate limited after the client's retries
                    limiter = getattr(self.client, "_limiter", None)
                    if limiter is not None and hasattr(limiter, "pause"):
                        limiter.pause(THROTTLE_PAUSE_SECONDS)
                if self.retry.gives_up_after(item.attempts):
                    await self._fail(session, item, f"{message} (after {item.attempts} attempts)")
                else:
                    await queue.retry(
                        session, TAGS_STAGE, item, error=message, delay=self.retry.delay(item.attempts)
                    )
                    self.stats["retry"] += 1
            else:
                if not isinstance(outcome, ClientError):
                    log.error("tags: lookup failed for track %s: %s", item.key, message)
                await self._fail(session, item, message)
            await repo.merge_state(session, state)

    async def _fail(self, session: AsyncSession, item: Claim, message: str) -> None:
        retry_at = utcnow() + timedelta(seconds=self.failed_retry_seconds)
        await queue.fail(session, TAGS_STAGE, item, error=f"{message} Tried again later.", next_at=retry_at)
        self.stats["failed"] += 1


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")


def job_kinds(runtime: Runtime) -> list[JobKind]:
    """`tag_top_tracks` (a vibe's tag lookup), when a Last.fm key is configured."""
    if not runtime.settings.lastfm_configured:
        return []
    client: list[LastfmClient] = []

    async def lookup(ctx: JobContext) -> dict[str, Any] | None:
        if not client:  # created on the running loop, once; shares the database-wide limiter
            client.append(lastfm_client(runtime.settings, http=runtime.http, sessions=runtime.sessions))
        return dict(await service.lookup_tag(runtime.sessions, client=client[0], tag=str(ctx.payload["tag"])))

    return [JobKind(name=TAG_LOOKUP_JOB, handler=lookup)]
