"""Discovery by itself: a periodic job inside `serve` (HAUNTFM_DISCOVERY_INTERVAL_HOURS).

Each run is the same as `POST /api/admin/discover` with its defaults: the listened tracks
not expanded within HAUNTFM_DISCOVERY_REEXPAND_DAYS, most played first, at the shared
Last.fm rate limit, with progress in /api/status. Without a Last.fm key the job does
nothing (and says so in its result); with the interval at 0 it is not scheduled.
"""

from __future__ import annotations

import logging
from typing import Any

from haunt_fm.pipeline.discovery import service
from haunt_fm.queue import JobContext, JobKind
from haunt_fm.retry import RetryPolicy
from haunt_fm.runtime import Runtime

log = logging.getLogger(__name__)

KIND = "discovery"
FIRST_RUN_AFTER_SECONDS = 300.0


def job_kinds(runtime: Runtime) -> list[JobKind]:
    """The periodic discovery run."""
    settings = runtime.settings

    async def run(ctx: JobContext) -> dict[str, Any]:
        if not settings.lastfm_configured:
            return {"skipped": "no Last.fm key (HAUNTFM_LASTFM_API_KEY)"}
        result = await service.discover(
            session_factory=runtime.sessions, settings=settings, http=runtime.http
        )
        log.info(
            "scheduled discovery: %d seeds expanded, %d new candidates", result.seeds, result.candidates_new
        )
        return result.model_dump(mode="json", exclude={"errors"})

    hours = settings.discovery_interval_hours
    return [
        JobKind(
            name=KIND,
            handler=run,
            # A failed run (Last.fm down) is tried again within the hour; the schedule goes on.
            retry=RetryPolicy(max_attempts=3, base_delay=300.0, max_delay=3600.0),
            every=lambda: hours * 3600.0,
            # Soon after start (a new install discovers by itself), not in the middle of startup.
            first_after=FIRST_RUN_AFTER_SECONDS,
        )
    ]
