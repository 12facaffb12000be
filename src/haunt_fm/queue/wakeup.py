"""Waking idle workers the moment work is queued, on every machine: PostgreSQL LISTEN/NOTIFY.

One listening connection per process (not from the pool) receives `haunt_fm_work`
notifications and sets the named stage's event. When the connection is lost it is
re-opened with backoff; meanwhile workers fall back to their idle interval, so a missed
notification costs at most one interval, never work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from haunt_fm.queue.repository import CHANNEL
from haunt_fm.retry import RetryPolicy

log = logging.getLogger(__name__)

_RECONNECT = RetryPolicy(max_attempts=1_000_000, base_delay=1.0, max_delay=30.0)


class Wakeups:
    """Per-process wake-up events by stage name, fed by LISTEN (and by `poke` within the process)."""

    def __init__(self, dsn: str | None = None) -> None:
        self.dsn = dsn
        self._events: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = False

    def event(self, stage: str) -> asyncio.Event:
        if stage not in self._events:
            self._events[stage] = asyncio.Event()
        return self._events[stage]

    def poke(self, stage: str) -> None:
        """Wake this process's workers of `stage` (must run on the event loop)."""
        self.event(stage).set()

    async def wait(self, stage: str, seconds: float) -> bool:
        """Wait until `stage` is poked or `seconds` pass; True when poked."""
        event = self.event(stage)
        if event.is_set():
            event.clear()
            return True
        try:
            await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return False
        event.clear()
        return True

    async def wait_any(self, stages: tuple[str, ...], seconds: float) -> str | None:
        """Wait until one of `stages` is poked or `seconds` pass; returns the stage poked, or None."""
        for stage in stages:
            event = self.event(stage)
            if event.is_set():
                event.clear()
                return stage
        waits = {asyncio.ensure_future(self.event(s).wait()): s for s in stages}
        try:
            done, _ = await asyncio.wait(
                waits, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in waits:
                task.cancel()
        for task in done:
            stage = waits[task]
            self.event(stage).clear()
            return stage
        return None

    async def start(self) -> None:
        """Start listening in the background (no-op without a DSN)."""
        if self.dsn is not None and self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="queue-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.poke(payload)

    async def _listen_forever(self) -> None:
        import asyncpg

        failures = 0
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
                await conn.add_listener(CHANNEL, self._on_notify)
                self.listening, failures = True, 0
                # Anything queued while we were not listening: let every stage look once.
                for event in self._events.values():
                    event.set()
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _c, closed=closed: closed.set())
                await closed.wait()
                log.warning("the queue's LISTEN connection closed; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning("could not LISTEN for queued work (%s); workers poll meanwhile", exc)
            finally:
                self.listening = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(_RECONNECT.delay(max(1, failures)))
