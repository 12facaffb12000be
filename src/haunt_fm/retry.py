"""One retry policy for everything that tries again: HTTP clients and queued work.

Exponential backoff, jittered, capped. A service's own `Retry-After` hint (seconds or an
HTTP-date) is honoured up to `RETRY_AFTER_MAX_SECONDS`; past that we give up at once with a
visible error instead of parking a worker for an hour (its lease would expire meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
SleepFn = Callable[[float], Awaitable[Any]]

# The longest `Retry-After` we wait for (README, "Outside services"). Longer asks give up.
RETRY_AFTER_MAX_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry: base x multiplier^(n-1), capped, jittered."""

    max_attempts: int = 4
    base_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0
    # Each delay is scaled by a random factor in [1 - jitter, 1 + jitter] so that
    # callers that failed together don't all come back together.
    jitter: float = 0.2
    max_retry_after: float = RETRY_AFTER_MAX_SECONDS

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be non-negative and multiplier at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, retry_number: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry `retry_number` (1 = the first retry); never above max_delay."""
        raw = min(self.max_delay, self.base_delay * self.multiplier ** max(0, retry_number - 1))
        if self.jitter:
            raw *= (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return min(raw, self.max_delay)

    def gives_up_after(self, attempts: int) -> bool:
        """Whether `attempts` failed attempts use up the budget."""
        return attempts >= self.max_attempts


class RetryAfterTooLong(Exception):
    """The service asked us to wait longer than `max_retry_after`; `original` is its error."""

    def __init__(self, original: BaseException, *, seconds: float, cap: float) -> None:
        super().__init__(f"asked to wait {seconds:.0f} s, more than the {cap:.0f} s cap")
        self.original = original
        self.seconds = seconds
        self.cap = cap


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """A `Retry-After` header as seconds from now: delta-seconds or an HTTP-date; None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says a later attempt may get past it (its `transient` attribute)."""
    return bool(getattr(exc, "transient", False))


async def retry_async(
    operation: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    should_retry: Callable[[BaseException], bool] = is_transient,
    sleep: SleepFn = asyncio.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    what: str = "request",
) -> T:
    """Run `operation`, retrying failures `should_retry` accepts with the policy's backoff.

    The last failure is re-raised unchanged once attempts run out or one is not retryable.
    A `retry_after` hint on the error (seconds) lengthens the wait; one above the policy's
    cap raises RetryAfterTooLong. `on_retry(retry_number, exc, delay)` runs before each wait.
    """
    attempt = 1
    while True:
        try:
            return await operation()
        except Exception as exc:
            if attempt >= policy.max_attempts or not should_retry(exc):
                raise
            delay = policy.delay(attempt, rng=rng)
            hint = getattr(exc, "retry_after", None)
            if isinstance(hint, int | float):
                if hint > policy.max_retry_after:
                    raise RetryAfterTooLong(exc, seconds=float(hint), cap=policy.max_retry_after) from exc
                delay = max(delay, float(hint))
            log.info(
                "%s failed (attempt %d of %d): %s; retrying in %.2fs",
                what,
                attempt,
                policy.max_attempts,
                exc,
                delay,
            )
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            await sleep(delay)
            attempt += 1
