"""Holding claims while work runs: a heartbeat renews their leases; leaving hands back the unsettled.

    async with hold(sessions, stage, claims, lease_seconds=60) as held:
        ... long work ...
        async with transaction(sessions) as session:
            await queue.complete(session, stage, claim)

The lease is short and renewed every third of it, so a batch may run as long as it needs
while a worker that dies (SIGKILL, OOM, power) lets its items go within one lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.db.session import transaction
from haunt_fm.queue import repository as repo
from haunt_fm.queue.repository import Claim
from haunt_fm.queue.stage import Stage

log = logging.getLogger(__name__)


class Held:
    """The claims being held; `lost` lists the ones another worker took over meanwhile."""

    def __init__(self, claims: Sequence[Claim]) -> None:
        self.claims = list(claims)

    @property
    def active(self) -> list[Claim]:
        return [c for c in self.claims if not c.settled and not c.lost]

    @property
    def lost(self) -> list[Claim]:
        return [c for c in self.claims if c.lost]


async def _renew_forever(
    sessions: async_sessionmaker[AsyncSession], stage: Stage, held: Held, *, lease_seconds: float
) -> None:
    interval = max(0.05, lease_seconds / 3)
    while True:
        await asyncio.sleep(interval)
        active = held.active
        if not active:
            continue
        by_owner: dict[str, list[Claim]] = {}
        for item in active:
            by_owner.setdefault(item.owner, []).append(item)
        try:
            async with transaction(sessions) as session:
                for owner, items in by_owner.items():
                    kept = await repo.renew(
                        session, stage, keys=[c.key for c in items], owner=owner, lease_seconds=lease_seconds
                    )
                    for item in items:
                        if item.key not in kept and not item.settled:
                            item.lost = True
                            log.warning("%s: lost the lease on %s to another worker", stage.name, item.key)
        except asyncio.CancelledError:
            raise
        except Exception:  # a database hiccup: the lease has two more intervals before it runs out
            log.warning("%s: could not renew leases", stage.name, exc_info=True)


@asynccontextmanager
async def hold(
    sessions: async_sessionmaker[AsyncSession],
    stage: Stage,
    claims: Sequence[Claim],
    *,
    lease_seconds: float,
) -> AsyncIterator[Held]:
    """Keep the claims' leases renewed while the block runs; release what it left unsettled."""
    held = Held(claims)
    renewer = asyncio.create_task(_renew_forever(sessions, stage, held, lease_seconds=lease_seconds))
    try:
        yield held
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await renewer
        leftover = [c for c in held.claims if not c.settled and not c.lost]
        if leftover:
            # Shutdown or a crash mid-batch: hand the leases back now rather than making other
            # workers wait for them to expire. Shielded: this must finish even when cancelled.
            with contextlib.suppress(Exception):
                await asyncio.shield(_release(sessions, stage, leftover))


async def _release(sessions: async_sessionmaker[AsyncSession], stage: Stage, claims: Sequence[Claim]) -> None:
    async with transaction(sessions) as session:
        await repo.release(session, stage, claims)
