"""`haunt-fm backfill`: read an explicit window of Home Assistant's history for missed listens."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time

import httpx

from haunt_fm import __version__
from haunt_fm.clients.homeassistant.client import HomeAssistantClient
from haunt_fm.config import Settings
from haunt_fm.db.session import create_engine, create_session_factory
from haunt_fm.pipeline.listens import reconcile


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
    engine = create_engine(url, pool_size=2)
    try:
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=10.0), headers={"User-Agent": f"haunt-fm/{__version__}"}
        ) as http:
            client = HomeAssistantClient(settings.ha_url or "", settings.ha_token, http=http)
            return await reconcile.reconcile(
                session_factory=create_session_factory(engine),
                settings=settings,
                client=client,
                start=since,
                end=until,
            )
    finally:
        await engine.dispose()
