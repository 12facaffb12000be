"""Waiting for background work in tests: poll until a condition holds.

The bound is a liveness guard (a hung service must not hang the run), never a speed check:
how fast things are is measured in bench/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def _give_up(what: str, seconds: float, last: Any) -> None:
    pytest.fail(f"gave up waiting for {what} (liveness bound {seconds:.0f} s); last seen: {last!r}")


def eventually(check: Callable[[], T], *, what: str, seconds: float = 120.0, every: float = 0.1) -> T:
    """Call `check` until it returns something truthy; that value."""
    start = time.monotonic()
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() - start > seconds:
            _give_up(what, seconds, result)
        time.sleep(every)


async def eventually_async(
    check: Callable[[], Awaitable[T]], *, what: str, seconds: float = 120.0, every: float = 0.05
) -> T:
    """Await `check()` until it returns something truthy; that value."""
    start = time.monotonic()
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() - start > seconds:
            _give_up(what, seconds, result)
        await asyncio.sleep(every)
