"""Keeping the embedded PostgreSQL alive under `serve`: notice it died, restart it, or give up loudly.

The supervisor checks the postmaster every second (a pid file and /proc, no connection).
When it is gone it tells the app (which answers 503 with Retry-After meanwhile), restarts
it with bounded, backed-off attempts, and tells the app again when it is back (the app drops
its dead pooled connections). If it cannot come back, it says why and asks the process to
exit non-zero, so systemd or Docker restart the whole service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from haunt_fm.db.embedded import EmbeddedPostgres
from haunt_fm.retry import RetryPolicy

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
RESTART = RetryPolicy(max_attempts=5, base_delay=1.0, multiplier=2.0, max_delay=8.0, jitter=0.1)


class DatabaseSupervisor:
    """Watches the embedded server this process owns; restarts it when it dies."""

    def __init__(
        self,
        server: EmbeddedPostgres,
        *,
        on_down: Callable[[str], None],
        on_up: Callable[[], Awaitable[None]],
        on_fatal: Callable[[str], None],
        check_seconds: float = CHECK_SECONDS,
        policy: RetryPolicy = RESTART,
    ) -> None:
        self.server = server
        self.on_down = on_down
        self.on_up = on_up
        self.on_fatal = on_fatal
        self.check_seconds = check_seconds
        self.policy = policy
        self.restarts = 0

    async def run(self) -> None:
        """Check until cancelled; returns after giving up (on_fatal has been called)."""
        while True:
            await asyncio.sleep(self.check_seconds)
            if await asyncio.to_thread(self.server.is_running):
                continue
            if not await self._recover():
                return

    async def _recover(self) -> bool:
        message = "The embedded PostgreSQL stopped unexpectedly; haunt-fm is restarting it."
        log.error("%s", message)
        self.on_down(message)
        last: BaseException | None = None
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                await asyncio.to_thread(self.server.restart)
                await self.on_up()
            except Exception as exc:  # pg_ctl failed, shared memory still held: try again later
                last = exc
                delay = self.policy.delay(attempt)
                log.warning(
                    "restarting the embedded PostgreSQL failed (attempt %d of %d): %s; next try in %.0f s",
                    attempt,
                    self.policy.max_attempts,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self.restarts += 1
            log.warning("the embedded PostgreSQL is back (restart %d, attempt %d)", self.restarts, attempt)
            return True
        self.on_fatal(
            f"The embedded PostgreSQL died and could not be restarted after {self.policy.max_attempts} "
            f"attempts ({last}); haunt-fm exits so that its supervisor (systemd, Docker) restarts it. "
            f"The server log is {self.server.paths.log}."
        )
        return False
