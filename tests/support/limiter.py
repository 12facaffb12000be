"""A test double for the rate limiter the clients take (production uses the shared one in db/)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


class StepLimiter:
    """Lets callers through one per `per / rate` seconds on an injectable clock; `pause` holds everyone."""

    def __init__(
        self,
        rate: float,
        per: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.interval = per / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._paused_until = float("-inf")
        self.pauses: list[float] = []
        self._lock = asyncio.Lock()

    @classmethod
    def per_minute(cls, rate: float, **kwargs: Any) -> StepLimiter:
        return cls(rate, 60.0, **kwargs)

    async def acquire(self) -> float:
        async with self._lock:
            while (wait := max(self._next, self._paused_until) - self._clock()) > 0:
                await self._sleep(wait)
            now = self._clock()
            self._next = now + self.interval
            return now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self._paused_until = max(self._paused_until, self._clock() + seconds)
