"""Jobs: one-off and periodic background work on the same lease queue as every stage.

A stage declares its job kinds (`JobKind`: a handler, a retry policy, optionally a
period) in its `tasks.py`; the process that runs jobs (`serve`) hands them to a
`JobRunner`. A handler gets a `JobContext` (payload, progress reporting, the sessions)
and returns a result document, or raises: a transient error (`.transient`) is retried by
the policy, anything else fails the job with its message. A periodic kind is scheduled
again after every run, successful or not, so one failure never stops the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.db.session import transaction
from haunt_fm.queue import repository as repo
from haunt_fm.queue.lease import Held
from haunt_fm.queue.repository import Claim
from haunt_fm.queue.runner import StageRunner
from haunt_fm.queue.stage import Stage
from haunt_fm.queue.wakeup import Wakeups
from haunt_fm.retry import RetryPolicy, is_transient

log = logging.getLogger(__name__)

PERIODIC_KEY = "periodic"
JOB_LEASE_SECONDS = 60.0
DEFAULT_JOB_RETRY = RetryPolicy(max_attempts=5, base_delay=30.0, max_delay=3600.0)


def jobs_stage(kinds: list[str] | None = None) -> Stage:
    """The jobs table as a stage (optionally only some kinds: `:kinds` is bound at claim time)."""
    return Stage(
        name="jobs",
        table="jobs",
        prefix="",
        order_by="next_at NULLS FIRST, id",
        ready="kind = ANY(CAST(:kinds AS text[]))" if kinds is not None else "true",
        returning=("t.kind", "t.key", "t.payload"),
    )


# One given job (`:job_id`), if it is due and free: a command line that queued a job runs it itself.
_ONE_JOB_STAGE = Stage(
    name="jobs",
    table="jobs",
    prefix="",
    ready="id = CAST(:job_id AS bigint) AND kind = ANY(CAST(:kinds AS text[]))",
    returning=("t.kind", "t.key", "t.payload"),
)


@dataclass(slots=True)
class JobContext:
    """What a handler gets: the job and a way to report progress while it runs."""

    job_id: int
    kind: str
    key: str | None
    payload: dict[str, Any]
    attempt: int
    sessions: async_sessionmaker[AsyncSession]
    claim: Claim
    last_progress: dict[str, Any] = field(default_factory=dict)

    async def progress(self, **values: Any) -> None:
        """Publish progress (merged into what was reported before)."""
        self.last_progress |= values
        async with transaction(self.sessions) as session:
            await repo.job_progress(session, self.claim, progress=self.last_progress)


Handler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class JobKind:
    """A kind of job: its handler, retry policy and (for periodic kinds) period in seconds."""

    name: str
    handler: Handler
    retry: RetryPolicy = DEFAULT_JOB_RETRY
    every: Callable[[], float | None] | None = None  # seconds; None or <= 0 = not periodic
    first_after: float = 0.0  # seconds after startup for a periodic kind's first run
    # A periodic kind that must run soon after every start (not only the first): its pending
    # run is brought forward to `first_after` from now (recovering what happened while down).
    at_start: bool = False


async def enqueue(
    sessions: async_sessionmaker[AsyncSession],
    *,
    kind: str,
    payload: dict[str, Any] | None = None,
    key: str | None = None,
    run_at: datetime | None = None,
) -> int | None:
    """Queue a job in its own transaction; None when the same (kind, key) is already pending."""
    async with transaction(sessions) as session:
        return await repo.enqueue_job(session, kind=kind, payload=payload, key=key, run_at=run_at)


class JobRunner:
    """Runs the jobs of the given kinds, `concurrency` at a time, and keeps periodic kinds scheduled."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        kinds: Mapping[str, JobKind],
        wakeups: Wakeups | None = None,
        concurrency: int = 2,
        idle_seconds: float = 10.0,
        lease_seconds: float = JOB_LEASE_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.kinds = dict(kinds)
        self.concurrency = max(1, concurrency)
        self.runner = StageRunner(
            sessions=sessions,
            stage=jobs_stage(list(self.kinds)),
            batch=1,
            lease_seconds=lease_seconds,
            # The policy of each kind decides retries; this caps crash loops.
            max_attempts=max((k.retry.max_attempts for k in self.kinds.values()), default=5),
            idle_seconds=idle_seconds,
            wakeups=wakeups,
            claim_params=lambda: {"kinds": list(self.kinds)},
        )
        self.running: dict[int, str] = {}

    async def schedule_periodic(self) -> None:
        """Make sure every periodic kind has its next run queued (first run: now)."""
        for kind in self.kinds.values():
            period = kind.every() if kind.every else None
            if period and period > 0:
                first = datetime.now(UTC) + timedelta(seconds=kind.first_after)
                async with transaction(self.sessions) as session:
                    queued = await repo.enqueue_job(session, kind=kind.name, key=PERIODIC_KEY, run_at=first)
                    if queued is None and kind.at_start:
                        await repo.bring_forward(session, kind=kind.name, key=PERIODIC_KEY, run_at=first)

    async def run_forever(self) -> None:
        await self.schedule_periodic()
        workers = [
            asyncio.create_task(self.runner.run_forever(self._process)) for _ in range(self.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            # A plain gather ends as soon as its first worker is cancelled (an idle one, at once),
            # leaving a busy one no time to hand its job's lease back: wait for every one. One
            # already cancelled is not cancelled again: that would break off its clean-up (a
            # rollback, the lease's release) and leave a connection idle in its transaction.
            for worker in workers:
                if not worker.done() and not worker.cancelling():
                    worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker

    async def run_once(self) -> int:
        """Run at most one due job; returns 1 if one ran (for tests and `run_until_idle`)."""
        return await self.runner.run_once(self._process)

    async def run_job(self, job_id: int) -> bool:
        """Run the job `job_id` now if it is due and nobody holds it; False when it could not be claimed."""
        runner = StageRunner(
            sessions=self.sessions,
            stage=_ONE_JOB_STAGE,
            batch=1,
            lease_seconds=self.runner.lease_seconds,
            max_attempts=self.runner.max_attempts,
            idle_seconds=0.0,
            claim_params=lambda: {"job_id": job_id, "kinds": list(self.kinds)},
        )
        return bool(await runner.run_once(self._process))

    async def run_until_idle(self, *, max_jobs: int = 1000) -> int:
        """Run due jobs one after another until none is due; returns how many ran."""
        ran = 0
        while ran < max_jobs and await self.run_once():
            ran += 1
        return ran

    async def _process(self, claims: list[Claim], held: Held) -> None:
        for claim in claims:
            await self._run_one(claim)

    async def _run_one(self, claim: Claim) -> None:
        kind = self.kinds[claim["kind"]]
        ctx = JobContext(
            job_id=int(claim.key),
            kind=kind.name,
            key=claim["key"],
            payload=dict(claim["payload"] or {}),
            attempt=claim.attempts,
            sessions=self.sessions,
            claim=claim,
        )
        self.running[ctx.job_id] = kind.name
        result: dict[str, Any] | None = None
        error: BaseException | None = None
        try:
            result = await kind.handler(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
            if not is_transient(exc):
                log.exception("job %s (%s) failed", ctx.job_id, kind.name)
        finally:
            self.running.pop(ctx.job_id, None)
        message = _message(error) if error is not None else None
        async with transaction(self.sessions) as session:
            if error is None:
                await repo.complete(session, self.runner.stage, claim)
            elif is_transient(error) and not kind.retry.gives_up_after(claim.attempts):
                delay = kind.retry.delay(claim.attempts)
                await repo.retry(session, self.runner.stage, claim, error=message or "", delay=delay)
                log.warning("job %s (%s): %s; trying again in %.0f s", ctx.job_id, kind.name, message, delay)
            else:
                await repo.fail(session, self.runner.stage, claim, error=message or "")
            if not claim.lost:
                await repo.job_finished(
                    session, job_id=ctx.job_id, result=result, progress=ctx.last_progress or None
                )
            period = kind.every() if kind.every else None
            if period and period > 0 and ctx.key == PERIODIC_KEY:
                run_at = datetime.now(UTC) + timedelta(seconds=period)
                await repo.enqueue_job(session, kind=kind.name, key=PERIODIC_KEY, run_at=run_at)


def _message(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message)
