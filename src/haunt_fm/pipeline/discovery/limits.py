"""One rate limiter per outside service per process (per event loop), shared by every caller.

Two discovery runs, or several preview lookups, in one process must share one budget:
a limiter per request would let each of them spend the whole rate.
"""

from __future__ import annotations

import asyncio
import weakref

from haunt_fm.clients._http import RateLimiter

# The limiter spaces the moments requests leave; the service counts the moments they arrive.
# Latency jitter (and a busy event loop between release and send) can squeeze N+1 arrivals
# into one window of a limiter running at exactly N, so run 5 % under the configured rate.
# bench/discovery.py: at exactly the limit the Last.fm stand-in saw 6 requests in one second.
RATE_HEADROOM = 0.95

_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, float, float], RateLimiter]]
_LIMITERS = weakref.WeakKeyDictionary()


def shared_limiter(service: str, *, rate: float, per: float) -> RateLimiter:
    """The process-wide limiter for `service`: `rate` per `per` seconds, less the headroom."""
    # RateLimiter holds an asyncio.Lock, which belongs to one event loop: key by the running loop.
    loop = asyncio.get_running_loop()
    per_loop = _LIMITERS.setdefault(loop, {})
    key = (service, float(rate), float(per))
    limiter = per_loop.get(key)
    if limiter is None:
        limiter = per_loop[key] = RateLimiter(rate * RATE_HEADROOM, per)
    return limiter
