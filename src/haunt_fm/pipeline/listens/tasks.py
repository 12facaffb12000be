"""Reconciliation from Home Assistant's history as a periodic job: at start, then every
HAUNTFM_HA_RECONCILE_MINUTES (only when Home Assistant is configured and the interval > 0)."""

from __future__ import annotations

from typing import Any

from haunt_fm.clients.homeassistant import HomeAssistantClient
from haunt_fm.pipeline.listens.reconcile import reconcile
from haunt_fm.queue import JobContext, JobKind
from haunt_fm.retry import RetryPolicy
from haunt_fm.runtime import Runtime

KIND = "ha_reconcile"


def job_kinds(runtime: Runtime) -> list[JobKind]:
    """The periodic reconciliation, when Home Assistant is configured."""
    settings = runtime.settings
    if not settings.ha_configured or settings.ha_reconcile_minutes <= 0:
        return []

    async def run(ctx: JobContext) -> dict[str, Any]:
        client = HomeAssistantClient(settings.ha_url or "", settings.ha_token, http=runtime.http)
        # A Home Assistant failure is recorded in the run (and read again next time), never raised.
        result = await reconcile(session_factory=runtime.sessions, settings=settings, client=client)
        return result.as_json()

    return [
        JobKind(
            name=KIND,
            handler=run,
            retry=RetryPolicy(max_attempts=2, base_delay=60.0, max_delay=300.0),
            every=lambda: settings.ha_reconcile_minutes * 60.0,
            first_after=0.0,
            at_start=True,  # after every start: recover what was missed while haunt-fm was down
        )
    ]
