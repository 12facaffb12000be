"""The retry policy and the clients' limiter use, alone and in front of a real loopback server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from haunt_fm.clients._http import ClientError, RetryPolicy, as_sentence
from haunt_fm.clients.itunes import ItunesClient, ItunesRateLimited
from haunt_fm.clients.lastfm import LastfmClient
from haunt_fm.db.rate_limits import shared_limiter
from haunt_fm.retry import RETRY_AFTER_MAX_SECONDS, RetryAfterTooLong, parse_retry_after, retry_async
from tests.fakes import FakeItunes, FakeLastfm, max_in_window
from tests.support.limiter import StepLimiter

KEY = "rate-test-key"


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# -- over real HTTP ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lastfm() -> Iterator[FakeLastfm]:
    with FakeLastfm(api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def itunes() -> Iterator[FakeItunes]:
    with FakeItunes() as fake:
        yield fake


class RecordingLimiter(StepLimiter):
    """A limiter on a fake clock that remembers every slot it handed out."""

    def __init__(self, rate: float, per: float) -> None:
        self.clock = FakeClock()
        super().__init__(rate, per, clock=self.clock, sleep=self.clock.sleep)
        self.released: list[float] = []

    async def acquire(self) -> float:
        slot = await super().acquire()
        self.released.append(slot)
        return slot


async def test_every_lastfm_request_takes_a_slot_retries_included(lastfm: FakeLastfm) -> None:
    # Request spacing is judged on the limiter's schedule, not on arrival times a busy machine
    # can squeeze together; what the server adds is the count: every request it saw, retries
    # included, went through the limiter.
    lastfm.reset()
    rate, calls = 25.0, 31
    limiter = RecordingLimiter(rate, 1.0)
    lastfm.fail_next(11)  # one "service temporarily unavailable": retried, so one request more
    async with LastfmClient(
        KEY, lastfm.api_url, limiter=limiter, sleep=limiter.clock.sleep, retry=RetryPolicy(jitter=0)
    ) as client:
        results = await asyncio.gather(
            *(client.get_similar(f"Artist {i}", "Song", limit=3) for i in range(calls))
        )
    assert all(len(r.tracks) == 3 for r in results)
    assert len(lastfm.arrival_times()) == calls + 1
    assert len(limiter.released) == calls + 1
    assert max_in_window(limiter.released, 1.0 - 1e-9) <= rate
    assert limiter.released[:calls] == pytest.approx([100.0 + i / rate for i in range(calls)])


async def test_server_side_limit_is_respected_without_a_single_rate_error(
    lastfm: FakeLastfm, db: Any
) -> None:
    lastfm.reset()
    lastfm.max_per_second = 25  # the fake answers error 29 beyond this
    limiter = shared_limiter("lastfm", rate=20, per=1.0, sessions=db)  # the production limiter
    async with LastfmClient(KEY, lastfm.api_url, limiter=limiter) as client:
        await asyncio.gather(*(client.get_similar(f"Band {i}", "Tune", limit=1) for i in range(15)))
    assert [r.status for r in lastfm.requests] == [200] * 15


async def test_every_itunes_search_takes_a_slot(itunes: FakeItunes) -> None:
    itunes.reset()
    itunes.add_track("Daft Punk", "Get Lucky")
    limiter = RecordingLimiter(1200.0, 60.0)  # one every 50 ms
    async with ItunesClient(itunes.url, limiter=limiter, sleep=limiter.clock.sleep) as client:
        await asyncio.gather(*(client.search(f"daft punk {i}") for i in range(12)))
    assert len(itunes.arrival_times("/search")) == 12
    assert limiter.released == pytest.approx([100.0 + 0.05 * i for i in range(12)])
    assert max_in_window(limiter.released, 0.5 - 1e-9) <= 10


# -- retry ---------------------------------------------------------------------------------


class Flaky:
    """Fails with the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def transient(message: str = "busy", **kwargs: float) -> ClientError:
    return ClientError(message, transient=True, status=503, **kwargs)


async def test_retry_backs_off_exponentially_then_succeeds() -> None:
    clock = FakeClock()
    operation = Flaky(transient(), transient(), transient())
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, multiplier=2.0, max_delay=60, jitter=0)
    assert await retry_async(operation, policy=policy, sleep=clock.sleep) == "ok"
    assert operation.calls == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]


async def test_retry_gives_up_after_max_attempts_with_the_last_error() -> None:
    clock = FakeClock()
    last = transient("third")
    operation = Flaky(transient("first"), transient("second"), last, transient("never"))
    policy = RetryPolicy(max_attempts=3, base_delay=0.5, jitter=0)
    with pytest.raises(ClientError) as caught:
        await retry_async(operation, policy=policy, sleep=clock.sleep)
    assert caught.value is last
    assert operation.calls == 3
    assert clock.sleeps == [0.5, 1.0]


async def test_non_transient_errors_are_not_retried() -> None:
    clock = FakeClock()
    operation = Flaky(ClientError("bad key", transient=False, status=403))
    with pytest.raises(ClientError):
        await retry_async(operation, policy=RetryPolicy(max_attempts=5), sleep=clock.sleep)
    assert operation.calls == 1
    assert clock.sleeps == []
    # Exceptions that aren't ClientErrors are bugs, not outages: not retried either.
    operation2 = Flaky(KeyError("x"))
    with pytest.raises(KeyError):
        await retry_async(operation2, policy=RetryPolicy(max_attempts=5), sleep=clock.sleep)
    assert operation2.calls == 1


async def test_jitter_stays_within_bounds_and_varies() -> None:
    policy = RetryPolicy(base_delay=10.0, multiplier=2.0, max_delay=25.0, jitter=0.2)
    rng = random.Random(7)
    first = [policy.delay(1, rng=rng) for _ in range(200)]
    third = [policy.delay(3, rng=rng) for _ in range(200)]
    assert all(8.0 <= d <= 12.0 for d in first)
    assert len({round(d, 6) for d in first}) > 100
    assert all(20.0 <= d <= 25.0 for d in third)  # jittered, and never above the cap
    assert max(third) == 25.0


async def test_retry_after_hint_wins_when_longer() -> None:
    clock = FakeClock()
    operation = Flaky(transient(retry_after=7.5))
    await retry_async(operation, policy=RetryPolicy(base_delay=1.0, jitter=0), sleep=clock.sleep)
    assert clock.sleeps == [7.5]


async def test_a_retry_after_above_the_cap_gives_up_at_once() -> None:
    clock = FakeClock()
    operation = Flaky(transient(retry_after=3600.0))
    policy = RetryPolicy(base_delay=1.0, jitter=0, max_retry_after=300.0)
    with pytest.raises(RetryAfterTooLong) as caught:
        await retry_async(operation, policy=policy, sleep=clock.sleep)
    assert caught.value.seconds == 3600.0 and caught.value.cap == 300.0
    assert operation.calls == 1 and clock.sleeps == []


async def test_a_client_turns_a_long_retry_after_into_a_visible_give_up(itunes: FakeItunes) -> None:
    itunes.reset()
    itunes.throttle(times=5, status=429, retry_after="7200")
    clock = FakeClock()
    limiter = StepLimiter(60_000, 60.0, clock=clock, sleep=clock.sleep)
    async with ItunesClient(itunes.url, limiter=limiter, sleep=clock.sleep) as client:
        with pytest.raises(ItunesRateLimited) as caught:
            await client.search("radiohead nude")
    message = str(caught.value)
    assert "7200 s" in message and "giving up for now" in message and message.endswith(".")
    assert len(itunes.requests) == 1 and clock.sleeps == []
    assert limiter.pauses == [RETRY_AFTER_MAX_SECONDS]  # everyone sharing the limiter backs off


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:26:00 GMT", 0.0),  # in the past: go now
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 27, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == seconds


def test_error_messages_read_as_sentences() -> None:
    error = ClientError("last.fm answered error 16", transient=True, status=503)
    assert str(error) == "Last.fm answered error 16."
    assert error.transient is True and error.status == 503
    assert as_sentence("  Done!  ") == "Done!"
    assert as_sentence("") == "An unknown error occurred."
