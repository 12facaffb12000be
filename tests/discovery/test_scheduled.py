"""serve runs discovery by itself: a periodic job (HAUNTFM_DISCOVERY_INTERVAL_HOURS)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.runtime import open_runtime
from haunt_fm.worker.jobs import job_runner
from tests.discovery.support import discovery_settings, listen
from tests.fakes import FakeItunes, FakeLastfm

Sessions = async_sessionmaker[AsyncSession]


async def test_scheduled_discovery_expands_new_listens_and_schedules_the_next_run(
    settings_factory: Callable[..., object],
    serve: Callable[..., str],
    db: Sessions,
    pg_url: str,
    lastfm: FakeLastfm,
    itunes: FakeItunes,
) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=serve(), timeout=30) as http:
        await listen(http, "Radiohead", "Karma Police")
        await listen(http, "Björk", "Jóga")
    settings = settings_factory(**discovery_settings(lastfm, itunes), discovery_interval_hours=6)
    async with open_runtime(settings, database_url=pg_url, listen=False) as runtime:  # type: ignore[arg-type]
        runner = job_runner(runtime)
        assert runner is not None
        await runner.schedule_periodic()
        assert await runner.run_until_idle() == 0  # the first run waits a few minutes after start
        async with db() as session, session.begin():
            await session.execute(text("UPDATE jobs SET next_at = now() WHERE kind = 'discovery'"))
        assert await runner.run_until_idle() == 1
    async with db() as session:
        expanded = (
            await session.execute(
                text("SELECT count(*) FROM tracks WHERE listened AND lastfm_expanded_at IS NOT NULL")
            )
        ).scalar_one()
        done = (
            await session.execute(
                text("SELECT result FROM jobs WHERE kind = 'discovery' AND status = 'done'")
            )
        ).scalar_one()
        wait = (
            await session.execute(
                text(
                    "SELECT extract(epoch FROM next_at - now()) FROM jobs "
                    "WHERE kind = 'discovery' AND status = 'pending'"
                )
            )
        ).scalar_one()
    assert expanded == 2 and done["seeds"] == 2 and done["candidates_new"] > 0
    assert 6 * 3600 - 120 < float(wait) <= 6 * 3600


async def test_no_interval_means_no_scheduled_run(
    settings_factory: Callable[..., object], db: Sessions, pg_url: str, lastfm: FakeLastfm, itunes: FakeItunes
) -> None:
    settings = settings_factory(**discovery_settings(lastfm, itunes), discovery_interval_hours=0)
    async with open_runtime(settings, database_url=pg_url, listen=False) as runtime:  # type: ignore[arg-type]
        runner = job_runner(runtime)
        assert runner is not None
        await runner.schedule_periodic()
    async with db() as session:
        assert (await session.execute(text("SELECT count(*) FROM jobs"))).scalar_one() == 0
