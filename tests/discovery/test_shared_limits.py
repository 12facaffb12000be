"""The outside services' rate limits are shared through the database by every process."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.db.rate_limits import RATE_HEADROOM, SharedRateLimiter
from tests.fakes.server import max_in_window

Factory = async_sessionmaker[AsyncSession]


async def test_two_processes_share_one_budget(db: Factory) -> None:
    # Two limiters on one database stand for two processes (or machines) with their own memory,
    # each configured for 10/s (less the headroom shared_limiter applies).
    rate = 10 * RATE_HEADROOM
    a = SharedRateLimiter(db, "itunes", rate=rate, per=1.0)
    b = SharedRateLimiter(db, "itunes", rate=rate, per=1.0)
    started = time.monotonic()
    times = await asyncio.gather(*(lim.acquire() for lim in (a, b) * 12))
    elapsed = max(times) - started
    assert max_in_window(times, 1.0) <= 10
    # 24 requests at 9.5/s: the last leaves 2.4 s after the first, not 1.2 s (two budgets).
    assert 2.2 <= elapsed <= 3.2, elapsed


async def test_services_do_not_share_slots(db: Factory) -> None:
    lastfm = SharedRateLimiter(db, "lastfm", rate=5, per=1.0)
    itunes = SharedRateLimiter(db, "itunes", rate=5, per=1.0)
    started = time.monotonic()
    await asyncio.gather(lastfm.acquire(), itunes.acquire())
    assert time.monotonic() - started < 0.15


async def test_a_pause_moves_everyones_next_slot(db: Factory) -> None:
    a = SharedRateLimiter(db, "lastfm", rate=50, per=1.0)
    b = SharedRateLimiter(db, "lastfm", rate=50, per=1.0)
    await a.acquire()
    a.pause(0.5)  # Last.fm answered "rate limit exceeded" to a
    started = time.monotonic()
    await a.acquire()  # its next reservation carries the pause to the shared row
    await b.acquire()  # ... which b, another process, then waits behind
    assert time.monotonic() - started >= 0.45
