"""The outside services' rate limits are shared through the database by every process.

Checked on the limiter's own schedule: `acquire` returns the slot the database handed out
(seconds on the database's clock), so nothing here depends on how busy the machine is.
"""

from __future__ import annotations

import asyncio
import itertools

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.db.rate_limits import RATE_HEADROOM, SharedRateLimiter
from tests.fakes.server import max_in_window

Factory = async_sessionmaker[AsyncSession]

# Slots are timestamps with microsecond resolution.
TICK = 2e-6


async def test_two_processes_share_one_budget(db: Factory) -> None:
    # Two limiters on one database stand for two processes (or machines) with their own memory,
    # each configured for 10/s (less the headroom shared_limiter applies).
    rate = 10 * RATE_HEADROOM
    a = SharedRateLimiter(db, "itunes", rate=rate, per=1.0)
    b = SharedRateLimiter(db, "itunes", rate=rate, per=1.0)
    slots = sorted(await asyncio.gather(*(lim.acquire() for lim in (a, b) * 12)))
    # One budget: no two requests of either process share a slot or come closer than one
    # interval (two budgets would hand out pairs of equal slots).
    assert all(later - earlier >= a.interval - TICK for earlier, later in itertools.pairwise(slots))
    assert slots[-1] - slots[0] >= 23 * (a.interval - TICK)
    assert max_in_window(slots, 1.0) <= 10


async def test_services_do_not_share_slots(db: Factory) -> None:
    # One request a minute: had the services one budget, the second would get a slot a
    # minute after the first.
    lastfm = SharedRateLimiter(db, "lastfm", rate=1, per=60.0)
    itunes = SharedRateLimiter(db, "itunes", rate=1, per=60.0)
    first = await asyncio.wait_for(lastfm.acquire(), timeout=30)
    second = await asyncio.wait_for(itunes.acquire(), timeout=30)
    assert second - first < lastfm.interval


async def test_a_pause_moves_everyones_next_slot(db: Factory) -> None:
    a = SharedRateLimiter(db, "lastfm", rate=50, per=1.0)
    b = SharedRateLimiter(db, "lastfm", rate=50, per=1.0)
    first = await a.acquire()
    a.pause(0.5)  # Last.fm answered "rate limit exceeded" to a
    paused = await a.acquire()  # its next reservation carries the pause to the shared row
    other = await b.acquire()  # ... which b, another process, then waits behind
    assert paused - first >= 0.5 - TICK
    # Without the pause b's slot would follow a's by one interval (0.02 s); it follows the pause.
    assert other - first >= 0.5 + b.interval - TICK
    assert other - paused >= b.interval - TICK
