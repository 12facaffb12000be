"""The radio loop inside `serve`: claim due radios on the lease queue and give each its turn.

A radio is due when a listen on its speaker poked it (the trigger NOTIFYs `radio`, which
wakes this loop at once), when it would fall silent, or when a failed attempt to queue its
tracks is to be tried again. Any number of processes may run this loop on one database: a
radio's lease means one holder at a time, and a holder that dies frees it within
`LEASE_SECONDS`, so after a restart an active radio simply carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.config import Settings
from haunt_fm.db.session import transaction
from haunt_fm.pipeline.radio import repository as repo
from haunt_fm.pipeline.radio import service
from haunt_fm.pipeline.radio.models import RADIO_STAGE
from haunt_fm.pipeline.recommendations.vibe import VibeEncoder
from haunt_fm.queue import Claim, Expiry, Held, StageRunner, Wakeups

log = logging.getLogger(__name__)

# Radios worked on at once by one process (each holds a different speaker's radio).
CONCURRENCY = 2
# Due radios are also looked for this often (a NOTIFY wakes the loop at once).
POLL_SECONDS = 10.0
# A radio whose holders crashed this often in a row rests before it is tried again.
CRASH_REST_SECONDS = 600.0
ERROR_PAUSE_SECONDS = 5.0
MIN_WAIT_SECONDS = 0.05


class RadioRunner:
    """The radio stage of one process."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        vibe_encoder: Callable[[], VibeEncoder],
        wakeups: Wakeups | None = None,
        concurrency: int = CONCURRENCY,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        # A fresh encoder per turn: `serve` may load its text model after the loop started.
        self.vibe_encoder = vibe_encoder
        self.concurrency = max(1, concurrency)
        policy = service.retry_policy(settings)
        self.runner = StageRunner(
            sessions=sessions,
            stage=RADIO_STAGE,
            batch=1,
            lease_seconds=service.LEASE_SECONDS,
            max_attempts=policy.max_attempts,
            idle_seconds=poll_seconds,
            wakeups=wakeups,
            expiry=Expiry(
                f"The radio's worker stopped or crashed {policy.max_attempts} times in a row while working "
                "on it; tried again later.",
                next_at=lambda: datetime.now(UTC) + timedelta(seconds=CRASH_REST_SECONDS),
            ),
        )

    async def run_forever(self) -> None:
        """Work on due radios until cancelled; never raises on a bad turn or a database hiccup."""
        loops = [asyncio.create_task(self._loop()) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _loop(self) -> None:
        while True:
            try:
                if await self.runner.run_once(self._process):
                    continue
                wait = await self._until_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database went away, a bug in one turn: never die
                log.exception("radio: a turn failed")
                wait = ERROR_PAUSE_SECONDS
            # A NOTIFY (a listen poked a radio) wakes this at once; a retry falls due on time.
            await self.runner.idle(wait)

    async def _until_due(self) -> float:
        async with transaction(self.sessions) as session:
            due = await repo.next_due(session)
        if due is None:
            return self.runner.idle_seconds
        left = (due - datetime.now(UTC)).total_seconds()
        return min(self.runner.idle_seconds, max(MIN_WAIT_SECONDS, left))

    async def run_until_idle(self, *, max_turns: int = 100) -> int:
        """Give every due radio its turn until none is due; returns how many turns ran."""
        turns = 0
        while turns < max_turns and await self.runner.run_once(self._process):
            turns += 1
        return turns

    async def _process(self, claims: list[Claim], held: Held) -> None:
        for claim in claims:
            await service.work(
                self.sessions, claim=claim, settings=self.settings, vibe_encoder=self.vibe_encoder()
            )
