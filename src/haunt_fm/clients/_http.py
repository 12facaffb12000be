"""Shared pieces of the outside-service clients: errors, rate limiting, retry with backoff."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

import httpx

from haunt_fm import __version__ as _version

logger = logging.getLogger(__name__)

T = TypeVar("T")
SleepFn = Callable[[float], Awaitable[Any]]

# Last.fm asks API users for an identifiable User-Agent; the others don't mind one.
USER_AGENT = f"haunt-fm/{_version} (self-hosted music recommender)"
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=10.0)


def as_sentence(text: str) -> str:
    """Capitalise the first letter and end with a full stop, so errors read as sentences."""
    text = " ".join(text.split())
    if not text:
        return "An unknown error occurred."
    if text[0].islower():
        text = text[0].upper() + text[1:]
    if text[-1] not in ".!?":
        text += "."
    return text


class ClientError(Exception):
    """An outside service failed; `transient` says whether trying again later may succeed."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        message = as_sentence(message)
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.status = status
        # A service-supplied hint (seconds); the retry helper waits at least this long.
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, transient={self.transient}, status={self.status})"


def describe_transport_error(exc: BaseException) -> str:
    """A short description of an httpx transport failure, without the request URL."""
    # httpx transport errors don't embed the URL in str(), but the detail can be empty.
    detail = str(exc).strip()
    kind = type(exc).__name__
    return f"{kind}: {detail}" if detail else kind


def secret_value(value: Any) -> str:
    """The plain string of a `str` or a pydantic `SecretStr`."""
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if callable(getter) else value)


_SECRET_PARAM = re.compile(r"((?:api_key|token|access_token|password)=)[^&\s\"']+", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Blanks secret query parameters (`api_key=...`) in log records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return True
        redacted = _SECRET_PARAM.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install_log_redaction(logger_names: tuple[str, ...] = ("httpx", "httpcore")) -> None:
    """Attach RedactSecrets to the HTTP libraries' loggers: httpx logs every request URL at INFO."""
    for name in logger_names:
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in target.filters):
            target.addFilter(RedactSecrets())


def new_http_client(*, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> httpx.AsyncClient:
    """An httpx client with the house User-Agent, for clients that were not handed one."""
    return httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=True)


class Limiter(Protocol):
    """What the clients need of a rate limiter (in-process RateLimiter, or one shared via the database)."""

    async def acquire(self) -> float: ...

    def pause(self, seconds: float) -> None: ...


class ServiceClient:
    """Base of the outside-service clients: the HTTP client (shared, or owned and closed here),
    the retry policy, and an optional rate limiter that a throttling answer pauses for everyone."""

    def __init__(
        self,
        http: httpx.AsyncClient | None,
        *,
        retry: RetryPolicy,
        limiter: Limiter | None = None,
        sleep: SleepFn | None = None,
        rng: random.Random | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        self._http = http or new_http_client(timeout=timeout)
        self._owns_http = http is None
        self._retry = retry
        self._limiter = limiter
        # `sleep` only replaces backoff waits; a rate-limit pause runs on the limiter's clock,
        # so tests that inject `sleep` pass a `limiter` on the same fake clock.
        self._sleep = sleep
        self._rng = rng

    async def _wait_turn(self) -> None:
        """Wait for the rate limiter (if this service has one) to let the next request go."""
        if self._limiter is not None:
            await self._limiter.acquire()

    async def _with_retries(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        what: str,
        throttled: Callable[[BaseException], bool] = lambda _exc: False,
    ) -> T:
        """Run `attempt` under the retry policy; a throttling error pauses the shared limiter."""

        def slow_down(_n: int, exc: BaseException, delay: float) -> None:
            # A throttle applies to our address, so every caller sharing this client waits.
            if self._limiter is not None and throttled(exc):
                self._limiter.pause(delay)

        kwargs: dict[str, Any] = {"sleep": self._sleep} if self._sleep is not None else {}
        return await retry_async(
            attempt, policy=self._retry, rng=self._rng, on_retry=slow_down, what=what, **kwargs
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class RateLimiter:
    """Lets callers through evenly spaced, at most `rate` per `per` seconds in any window.

    Two rules, both on the times callers are actually let through (not on planned slots,
    which a busy event loop can overshoot): an even schedule of one release every
    `per / rate` seconds, and a hard cap of `rate` releases in any `per`-second window
    (for a fractional rate: floor(rate) releases per floor(rate) intervals). The cap is the
    guarantee; the schedule keeps traffic smooth, and may catch up a little after a late
    wake-up, so queued work still gets the full rate. Idle time is not banked as a burst.

    Callers queue in FIFO order on an asyncio lock; use one limiter from one event loop.
    A caller cancelled while waiting leaves no trace.
    """

    def __init__(
        self,
        rate: float,
        per: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: SleepFn = asyncio.sleep,
    ) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be positive")
        self.rate = rate
        self.per = per
        self.interval = per / rate
        self._clock = clock
        self._sleep = sleep
        # The cap: no `_cap + 1` consecutive releases within `_cap` intervals (= `per` for whole rates).
        self._cap = max(1, math.floor(rate + 1e-9))
        self._cap_window = self._cap * self.interval
        self._releases: deque[float] = deque(maxlen=self._cap)
        self._target = float("-inf")
        self._paused_until = float("-inf")
        self._lock = asyncio.Lock()

    @classmethod
    def per_second(cls, rate: float, **kwargs: Any) -> RateLimiter:
        """A limiter for `rate` requests per second."""
        return cls(rate, 1.0, **kwargs)

    @classmethod
    def per_minute(cls, rate: float, **kwargs: Any) -> RateLimiter:
        """A limiter for `rate` requests per minute."""
        return cls(rate, 60.0, **kwargs)

    def _earliest(self) -> float:
        earliest = max(self._target, self._paused_until)
        if len(self._releases) == self._cap:
            earliest = max(earliest, self._releases[0] + self._cap_window)
        return earliest

    async def acquire(self) -> float:
        """Wait for this caller's turn; returns the release time on the limiter's clock."""
        async with self._lock:
            while (wait := self._earliest() - self._clock()) > 0:
                await self._sleep(wait)
            now = self._clock()
            self._releases.append(now)
            if now - self._target < self.interval:
                self._target += self.interval  # on schedule, or slightly late: keep the schedule
            else:
                self._target = now + self.interval  # after idling (or a pause): start afresh
            return now

    def pause(self, seconds: float) -> None:
        """Let nobody through for `seconds` from now (the service said to slow down)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def __aenter__(self) -> float:
        return await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures."""

    max_attempts: int = 4
    base_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0
    # Each delay is scaled by a random factor in [1 - jitter, 1 + jitter] so that
    # clients that failed together don't all come back together.
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be non-negative and multiplier at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, retry_number: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry `retry_number` (1 = the first retry)."""
        raw = min(self.max_delay, self.base_delay * self.multiplier ** (retry_number - 1))
        if self.jitter:
            raw *= (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return raw


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a ClientError that a later attempt may get past."""
    return isinstance(exc, ClientError) and exc.transient


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
    """Run `operation`, retrying failures `should_retry` accepts with exponential backoff.

    The last failure is re-raised unchanged once attempts run out or one is not retryable.
    `on_retry(retry_number, exc, delay)` runs before each wait.
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
            if isinstance(hint, int | float) and hint > delay:
                delay = float(hint)
            logger.info(
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
