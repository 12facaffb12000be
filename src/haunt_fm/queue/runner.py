"""The one claim → hold → settle loop that every background stage runs.

A `StageRunner` claims up to `batch` items of its stage, holds them (heartbeat-renewed
leases) while the stage's `process` coroutine works on them and settles each, and hands
back whatever was left unsettled. Idle, it waits for a NOTIFY for its stage (or its idle
interval). Now and then it fails items whose holders crashed with no attempts left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.db.session import transaction
from haunt_fm.queue import repository as repo
from haunt_fm.queue.lease import Held, hold
from haunt_fm.queue.repository import Claim
from haunt_fm.queue.stage import Stage
from haunt_fm.queue.wakeup import Wakeups

log = logging.getLogger(__name__)

Process = Callable[[list[Claim], Held], Awaitable[None]]

MAINTENANCE_SECONDS = 60.0


def worker_id(prefix: str = "") -> str:
    """hostname:pid:random — unique per worker object, readable in logs and /api/status."""
    base = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    return f"{prefix}{base}" if prefix else base


@dataclass(frozen=True, slots=True)
class Expiry:
    """What becomes of an item whose holders crashed `max_attempts` times."""

    reason: str
    status: str = "failed"
    next_at: Callable[[], datetime | None] = lambda: None


class StageRunner:
    """Claims, holds and settles one stage's work; any number may run on any number of machines."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        stage: Stage,
        batch: int,
        lease_seconds: float,
        max_attempts: int,
        idle_seconds: float,
        wakeups: Wakeups | None = None,
        owner: str | None = None,
        expiry: Expiry | None = None,
        claim_params: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.stage = stage
        self.batch = max(1, batch)
        self.lease_seconds = lease_seconds
        self.max_attempts = max(1, max_attempts)
        self.idle_seconds = idle_seconds
        self.wakeups = wakeups
        self.owner = owner or worker_id(f"{stage.name}@")
        self.expiry = expiry or Expiry(
            f"Gave up after {self.max_attempts} attempts that ended without an outcome (the worker "
            "holding it stopped or crashed each time)."
        )
        self._claim_params = claim_params
        self._claims = 0
        self._last_maintenance = float("-inf")

    def _token(self) -> str:
        # A token per claim: two tasks of one process never share a lease.
        self._claims += 1
        return f"{self.owner}#{self._claims}"

    async def claim(self, limit: int | None = None) -> list[Claim]:
        """Lease up to `limit` (default: the batch size) items, committed at once."""
        await self.maintain()
        async with transaction(self.sessions) as session:
            return await repo.claim(
                session,
                self.stage,
                owner=self._token(),
                limit=limit or self.batch,
                lease_seconds=self.lease_seconds,
                max_attempts=self.max_attempts,
                params=self._claim_params() if self._claim_params else None,
            )

    async def maintain(self, *, force: bool = False) -> list[Any]:
        """Fail items whose holders died with no attempts left (at most once a minute)."""
        now = time.monotonic()
        if not force and now - self._last_maintenance < MAINTENANCE_SECONDS:
            return []
        self._last_maintenance = now
        async with transaction(self.sessions) as session:
            expired = await repo.expire_exhausted(
                session,
                self.stage,
                max_attempts=self.max_attempts,
                reason=self.expiry.reason,
                status=self.expiry.status,
                next_at=self.expiry.next_at(),
                params=self._claim_params() if self._claim_params else None,
            )
        if expired:
            log.warning("%s: %d item(s) failed: %s", self.stage.name, len(expired), self.expiry.reason)
        return expired

    async def run_once(self, process: Process, *, limit: int | None = None) -> int:
        """Claim one batch and process it while holding it; returns how many were claimed."""
        claims = await self.claim(limit)
        if not claims:
            return 0
        async with hold(self.sessions, self.stage, claims, lease_seconds=self.lease_seconds) as held:
            await process(claims, held)
        return len(claims)

    async def idle(self, seconds: float | None = None) -> bool:
        """Wait for this stage's NOTIFY or the idle interval; True when woken by new work."""
        timeout = self.idle_seconds if seconds is None else seconds
        if self.wakeups is None:
            await asyncio.sleep(timeout)
            return False
        return await self.wakeups.wait(self.stage.name, timeout)

    async def run_forever(
        self, process: Process, *, on_error: Callable[[BaseException], None] | None = None
    ) -> None:
        """Process batches until cancelled; a failing batch is logged and the loop goes on."""
        while True:
            try:
                done = await self.run_once(process)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away, a bug in one batch: never die
                log.exception("%s: batch failed", self.stage.name)
                if on_error is not None:
                    on_error(exc)
                await asyncio.sleep(min(self.idle_seconds, 5.0) or 1.0)
                continue
            if done == 0:
                await self.idle()


def unsettled(claims: Sequence[Claim]) -> list[Claim]:
    """The claims nobody has settled (and whose lease is still ours)."""
    return [c for c in claims if not c.settled and not c.lost]
