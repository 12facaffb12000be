"""Shared pieces of the outside-service clients: errors, the rate-limiter protocol, retries.

The retry policy itself is the project's one policy (`haunt_fm.retry`); clients only add
what is theirs: typed errors, a throttling answer pausing the shared limiter for everyone,
and a `Retry-After` longer than the cap turned into a visible "giving up for now".
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, Self, TypeVar

import httpx

from haunt_fm import __version__ as _version
from haunt_fm.retry import (
    RetryAfterTooLong,
    RetryPolicy,
    SleepFn,
    is_transient,
    parse_retry_after,
    retry_async,
)

__all__ = [
    "USER_AGENT",
    "ClientError",
    "Limiter",
    "RetryPolicy",
    "ServiceClient",
    "SleepFn",
    "as_sentence",
    "describe_transport_error",
    "is_transient",
    "new_http_client",
    "parse_retry_after",
    "secret_value",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

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

    def give_up(self, reason: str) -> None:
        """Add why no further attempt is made to the message (a capped Retry-After, say)."""
        self.message = as_sentence(f"{self.message.rstrip('.')}. {reason}")
        self.args = (self.message,)
        self.retry_after = None

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
    """What the clients need of a rate limiter (`haunt_fm.db.rate_limits.SharedRateLimiter`)."""

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
        try:
            return await retry_async(
                attempt, policy=self._retry, rng=self._rng, on_retry=slow_down, what=what, **kwargs
            )
        except RetryAfterTooLong as too_long:
            original = too_long.original
            if isinstance(original, ClientError):
                # Waiting that long would hold a worker past its lease: give up now, visibly,
                # and let the caller's own schedule (the queue's backoff) come back later.
                original.give_up(
                    f"The service asked us to wait {too_long.seconds:.0f} s (Retry-After), longer than "
                    f"the {too_long.cap:.0f} s haunt-fm waits; giving up for now"
                )
                if self._limiter is not None and throttled(original):
                    self._limiter.pause(too_long.cap)
            raise original from None

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
