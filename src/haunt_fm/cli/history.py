"""`haunt-fm backfill`: read an explicit window of Home Assistant's history for missed listens."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time

from haunt_fm.clients.homeassistant.client import HomeAssistantClient
from haunt_fm.config import Settings
from haunt_fm.pipeline.listens import reconcile
from haunt_fm.runtime import open_runtime


def parse_when(value: str) -> datetime:
    """A date (midnight UTC) or an ISO-8601 date-time (naive = UTC)."""
    value = value.strip()
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            when = datetime.combine(date.fromisoformat(value), time())
        except ValueError:
            raise ValueError(f"{value!r} is not a date (2026-11-20) or an ISO-8601 date-time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def run(settings: Settings, url: str, *, since: datetime, until: datetime | None) -> reconcile.ReconcileRun:
    """Reconcile [since, until) (until: now) and return what it read and recovered."""
    return asyncio.run(_run(settings, url, since=since, until=until))


async def _run(
    settings: Settings, url: str, *, since: datetime, until: datetime | None
) -> reconcile.ReconcileRun:
    async with open_runtime(settings, database_url=url, pool_size=2, listen=False) as runtime:
        client = HomeAssistantClient(settings.ha_url or "", settings.ha_token, http=runtime.http)
        return await reconcile.reconcile(
            session_factory=runtime.sessions, settings=settings, client=client, start=since, end=until
        )
