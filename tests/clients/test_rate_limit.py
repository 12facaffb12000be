"""The shared rate limiter and retry helper, alone and in front of a real loopback server."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Iterator

import pytest

from haunt_fm.clients._http import ClientError, RateLimiter, RetryPolicy, as_sentence, retry_async
from haunt_fm.clients.itunes import ItunesClient
from haunt_fm.clients.lastfm import LastfmClient
from tests.fakes import FakeItunes, FakeLastfm, max_in_window

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


# -- RateLimiter ---------------------------------------------------------------------------


async def test_slots_are_evenly_spaced_on_a_fake_clock() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, 1.0, clock=clock, sleep=clock.sleep)
    slots = [await limiter.acquire() for _ in range(9)]
    assert slots == pytest.approx([100.0 + 0.25 * i for i in range(9)])
    assert max_in_window(slots, 1.0 - 1e-9) == 4


async def test_idle_time_is_not_banked_as_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    clock.now += 60  # a long quiet spell
    slots = [await limiter.acquire() for _ in range(5)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert gaps == pytest.approx([0.1] * 4)
    assert slots[0] == pytest.approx(clock.now - 0.4)


async def test_a_late_wake_up_cannot_squeeze_an_extra_request_into_a_window() -> None:
    clock = FakeClock()
    overshoot = [0.2]  # the event loop is busy once: that sleep ends 0.2 s late

    async def late_sleep(seconds: float) -> None:
        await clock.sleep(seconds + (overshoot.pop() if overshoot else 0.0))

    limiter = RateLimiter(4, 1.0, clock=clock, sleep=late_sleep)
    releases = [await limiter.acquire() for _ in range(9)]
    assert releases[1] - releases[0] == pytest.approx(0.45)
    assert releases[2] - releases[1] == pytest.approx(0.05)  # back on schedule at once
    assert max_in_window(releases, 1.0 - 1e-9) == 4  # but the window cap holds back the fifth
    # ...and the schedule catches up rather than losing the time for good.
    assert releases[-1] - releases[0] == pytest.approx(2.0)


async def test_fractional_rates_average_out() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.5, 1.0, clock=clock, sleep=clock.sleep)
    releases = [await limiter.acquire() for _ in range(11)]
    assert releases[-1] - releases[0] == pytest.approx(4.0)  # 10 gaps of 0.4 s
    assert max_in_window(releases, 0.8 - 1e-9) <= 2


async def test_pause_holds_back_every_caller() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, 1.0, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    limiter.pause(5.0)
    assert await limiter.acquire() == pytest.approx(105.0)
    # A pause shorter than the queue already ahead changes nothing.
    limiter.pause(0.0)
    assert await limiter.acquire() == pytest.approx(105.01)


async def test_concurrent_callers_share_an_even_schedule_at_the_full_rate() -> None:
    clock = FakeClock()
    rate, per, callers = 20, 0.4, 50
    limiter = RateLimiter(rate, per, clock=clock, sleep=clock.sleep)
    slots = await asyncio.gather(*(limiter.acquire() for _ in range(callers)))
    # Every caller gets its own slot, one interval apart: the whole rate, never more.
    assert sorted(slots) == pytest.approx([100.0 + i * per / rate for i in range(callers)])
    assert max_in_window(slots, per - 1e-9) == rate


async def test_concurrent_callers_on_the_real_clock_never_exceed_the_limit() -> None:
    rate, per, callers = 20, 0.4, 50
    limiter = RateLimiter(rate, per)
    slots: list[float] = []
    woke: list[float] = []

    async def one() -> None:
        slots.append(await limiter.acquire())
        woke.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(callers)))

    assert len(set(slots)) == callers  # no two callers share a slot
    # Release times are read off the clock as each caller is let through (not planned
    # slots), so the guarantee holds however late the event loop wakes anyone.
    assert max_in_window(slots, per - 1e-9) <= rate
    assert all(w >= s for s, w in zip(sorted(slots), sorted(woke), strict=True))


def test_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(5, per=-1)
    assert RateLimiter.per_minute(20).interval == pytest.approx(3.0)
    assert RateLimiter.per_second(5).interval == pytest.approx(0.2)


# -- over real HTTP ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lastfm() -> Iterator[FakeLastfm]:
    with FakeLastfm(api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def itunes() -> Iterator[FakeItunes]:
    with FakeItunes() as fake:
        yield fake


class RecordingLimiter(RateLimiter):
    """A RateLimiter on a fake clock that remembers every slot it handed out."""

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


async def test_server_side_limit_is_respected_without_a_single_rate_error(lastfm: FakeLastfm) -> None:
    lastfm.reset()
    lastfm.max_per_second = 25  # the fake answers error 29 beyond this
    async with LastfmClient(KEY, lastfm.api_url, rate_per_second=20) as client:
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
    assert all(20.0 <= d <= 30.0 for d in third)  # capped at 25 before jitter


async def test_retry_after_hint_wins_when_longer() -> None:
    clock = FakeClock()
    operation = Flaky(transient(retry_after=7.5))
    await retry_async(operation, policy=RetryPolicy(base_delay=1.0, jitter=0), sleep=clock.sleep)
    assert clock.sleeps == [7.5]


def test_error_messages_read_as_sentences() -> None:
    error = ClientError("last.fm answered error 16", transient=True, status=503)
    assert str(error) == "Last.fm answered error 16."
    assert error.transient is True and error.status == 503
    assert as_sentence("  Done!  ") == "Done!"
    assert as_sentence("") == "An unknown error occurred."
