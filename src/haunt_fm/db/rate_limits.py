"""Rate limits for the outside services, shared by every caller in every process.

Two discovery runs, several preview lookups, a `serve` and a `haunt-fm discover` next to
it, or services on two machines against one database: they all spend one budget per
service. Each request reserves the next free slot in `rate_limits` (one row per service)
on the database's clock, so the requests leaving all processes together are evenly spaced
at the configured rate, and machines with skewed clocks still agree.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from datetime import datetime

from sqlalchemy import DateTime, Float, Text, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import Base


class RateLimitSlot(Base):
    """The next free request slot of an outside service, shared by every process on this database."""

    __tablename__ = "rate_limits"

    service: Mapped[str] = mapped_column(Text, primary_key=True)
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# The limiter spaces the moments requests leave; the service counts the moments they arrive.
# Latency jitter (and a busy event loop between release and send) can squeeze N+1 arrivals
# into one window of a limiter running at exactly N, so run 5 % under the configured rate.
# bench/discovery.py: at exactly the limit the Last.fm stand-in saw 6 requests in one second.
RATE_HEADROOM = 0.95

# Slot = the later of the service's next free slot and now (+ any pause a throttling answer
# asked for); the next free slot moves one interval past it. Idle time is not banked.
_RESERVE_SQL = text(
    """
    INSERT INTO rate_limits AS r (service, next_at)
    VALUES (:service, clock_timestamp() + make_interval(secs => :pause + :interval))
    ON CONFLICT (service) DO UPDATE SET
        next_at = greatest(r.next_at, clock_timestamp() + make_interval(secs => :pause))
                  + make_interval(secs => :interval)
    RETURNING extract(epoch FROM r.next_at - make_interval(secs => :interval)) AS slot,
              extract(epoch FROM r.next_at - make_interval(secs => :interval) - clock_timestamp()) AS wait
    """
).bindparams(bindparam("pause", type_=Float), bindparam("interval", type_=Float))


class SharedRateLimiter:
    """At most `rate` requests per `per` seconds for `service`, across every process."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], service: str, *, rate: float, per: float
    ) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be positive")
        self.sessions = sessions
        self.service = service
        self.rate = rate
        self.per = per
        self.interval = per / rate
        self._paused_until = float("-inf")

    async def acquire(self) -> float:
        """Reserve the next slot and wait for it; returns the slot (epoch seconds, database clock)."""
        pause = max(0.0, self._paused_until - time.monotonic())
        async with self.sessions() as session:
            slot, wait = (
                await session.execute(
                    _RESERVE_SQL, {"service": self.service, "pause": pause, "interval": self.interval}
                )
            ).one()
            await session.commit()
        if wait > 0:
            await asyncio.sleep(float(wait))
        return float(slot)

    def pause(self, seconds: float) -> None:
        """The service said to slow down: nobody's next request leaves before `seconds` from now."""
        # Applied with this process's next reservation, which moves everyone's next slot.
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)


_LIMITERS: weakref.WeakKeyDictionary[
    async_sessionmaker[AsyncSession], dict[tuple[str, float, float], SharedRateLimiter]
] = weakref.WeakKeyDictionary()


def shared_limiter(
    service: str, *, rate: float, per: float, sessions: async_sessionmaker[AsyncSession]
) -> SharedRateLimiter:
    """The limiter for `service`: `rate` per `per` seconds less the headroom, shared via the database."""
    per_db = _LIMITERS.setdefault(sessions, {})
    key = (service, float(rate), float(per))
    limiter = per_db.get(key)
    if limiter is None:
        limiter = per_db[key] = SharedRateLimiter(sessions, service, rate=rate * RATE_HEADROOM, per=per)
    return limiter
