"""Jobs on the lease queue: enqueue (deduplicated), run, retry by policy, fail, progress, periodic."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm import queue
from haunt_fm.queue import JobContext, JobKind, JobRunner
from haunt_fm.retry import RetryPolicy

Sessions = async_sessionmaker[AsyncSession]


class Flaky(Exception):
    transient = True


async def jobs(db: Sessions) -> list[dict[str, Any]]:
    async with db() as session:
        rows = await session.execute(
            text("SELECT kind, key, status, attempts, error, progress, result, next_at FROM jobs ORDER BY id")
        )
        return [dict(r) for r in rows.mappings()]


async def test_a_job_runs_reports_progress_and_stores_its_result(db: Sessions) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(ctx: JobContext) -> dict[str, Any]:
        await ctx.progress(done=1, total=2)
        seen.append(dict(ctx.payload))
        return {"sum": ctx.payload["a"] + ctx.payload["b"]}

    runner = JobRunner(sessions=db, kinds={"add": JobKind("add", handler)})
    first = await queue.enqueue(db, kind="add", payload={"a": 1, "b": 2}, key="one")
    again = await queue.enqueue(db, kind="add", payload={"a": 5, "b": 5}, key="one")
    assert first is not None and again is None  # (kind, key) already pending: deduplicated
    assert await runner.run_until_idle() == 1
    [job] = await jobs(db)
    assert (job["status"], job["result"], job["progress"]) == ("done", {"sum": 3}, {"done": 1, "total": 2})
    assert seen == [{"a": 1, "b": 2}]
    # Done, the key is free again.
    assert await queue.enqueue(db, kind="add", payload={"a": 0, "b": 0}, key="one") is not None


async def test_transient_errors_retry_by_the_policy_then_fail_with_the_message(db: Sessions) -> None:
    calls = 0

    async def handler(ctx: JobContext) -> None:
        nonlocal calls
        calls += 1
        raise Flaky("the service is down")

    kind = JobKind("flaky", handler, retry=RetryPolicy(max_attempts=2, base_delay=0.0, jitter=0))
    runner = JobRunner(sessions=db, kinds={"flaky": kind})
    await queue.enqueue(db, kind="flaky")
    assert await runner.run_once() == 1
    [job] = await jobs(db)
    assert (job["status"], job["attempts"], job["error"]) == ("pending", 1, "the service is down")
    assert await runner.run_once() == 1
    [job] = await jobs(db)
    assert (job["status"], job["error"], calls) == ("failed", "the service is down", 2)


async def test_a_bug_fails_the_job_at_once(db: Sessions) -> None:
    async def handler(ctx: JobContext) -> None:
        raise KeyError("oops")

    runner = JobRunner(sessions=db, kinds={"buggy": JobKind("buggy", handler)})
    await queue.enqueue(db, kind="buggy")
    await runner.run_until_idle()
    [job] = await jobs(db)
    assert job["status"] == "failed" and "oops" in job["error"]


async def test_a_runner_claims_only_its_own_kinds(db: Sessions) -> None:
    async def handler(ctx: JobContext) -> None:
        return None

    await queue.enqueue(db, kind="theirs")
    runner = JobRunner(sessions=db, kinds={"mine": JobKind("mine", handler)})
    assert await runner.run_until_idle() == 0
    assert [j["status"] for j in await jobs(db)] == ["pending"]


async def test_a_periodic_kind_is_scheduled_again_after_every_run(db: Sessions) -> None:
    runs = 0

    async def handler(ctx: JobContext) -> None:
        nonlocal runs
        runs += 1
        raise KeyError("even a failed run keeps the schedule")

    kind = JobKind("tick", handler, every=lambda: 3600.0)
    runner = JobRunner(sessions=db, kinds={"tick": kind})
    await runner.schedule_periodic()
    await runner.schedule_periodic()  # idempotent: one pending run
    assert await runner.run_until_idle() == 1
    done, scheduled = await jobs(db)
    assert done["status"] == "failed" and runs == 1
    assert scheduled["status"] == "pending" and scheduled["key"] == "periodic"
    async with db() as session:
        wait = (
            await session.execute(
                text("SELECT extract(epoch FROM next_at - now()) FROM jobs WHERE status = 'pending'")
            )
        ).scalar_one()
    assert 3500 < float(wait) <= 3600
    assert await runner.run_until_idle() == 0  # not due for an hour
