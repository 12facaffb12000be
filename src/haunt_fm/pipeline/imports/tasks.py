"""The import job: runs (or resumes) one import; `serve` runs it, and so does the CLI that queued it.

A job stopped by a shutdown hands its lease back at once; one whose process died is taken
over within a lease. Either way the next holder resumes at the import's cursor. Last.fm
down or the database away: the job is tried again with backoff (the import says so in its
`error`); anything else fails the import with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from haunt_fm.pipeline.imports import service
from haunt_fm.pipeline.imports.models import IMPORT_JOB
from haunt_fm.queue import JobContext, JobKind
from haunt_fm.retry import RetryPolicy
from haunt_fm.runtime import Runtime

log = logging.getLogger(__name__)

IMPORT_RETRY = RetryPolicy(max_attempts=8, base_delay=30.0, max_delay=1800.0)
# The job row's progress is for /api/status; the import row has the exact counts.
PROGRESS_EVERY_SECONDS = 1.0


def import_job_kind(
    runtime: Runtime, *, on_progress: service.ProgressFn | None = None, retry: RetryPolicy = IMPORT_RETRY
) -> JobKind:
    """The import job kind; `on_progress` also hears every batch (the CLI's progress bar)."""

    async def handle(ctx: JobContext) -> dict[str, Any]:
        import_id = int(ctx.payload["import_id"])
        last_published = 0.0

        async def progress(counts: service.Counts) -> None:
            nonlocal last_published
            if on_progress is not None:
                await on_progress(counts)
            now = time.monotonic()
            if now - last_published >= PROGRESS_EVERY_SECONDS:
                last_published = now
                await ctx.progress(
                    done=counts.done, total=counts.total, unit=counts.unit, imported=counts.imported
                )

        try:
            return await service.run_import(
                sessions=runtime.sessions,
                settings=runtime.settings,
                http=runtime.http,
                import_id=import_id,
                owner=ctx.claim.owner,
                progress=progress,
            )
        except (asyncio.CancelledError, service.LeaseLost):
            raise  # stopped or taken over: the next holder resumes at the cursor
        except Exception as exc:
            retryable = service.is_retryable(exc)
            retrying = retryable and not retry.gives_up_after(ctx.attempt)
            message = service.failure_message(exc)
            log.warning("import %d: %s%s", import_id, message, " (tried again shortly)" if retrying else "")
            await service.record_failure(
                sessions=runtime.sessions, import_id=import_id, owner=ctx.claim.owner, message=message,
                retrying=retrying,
            )  # fmt: skip
            if retryable and not getattr(exc, "transient", False):
                raise service.ImportInterrupted(message) from exc
            raise

    return JobKind(name=IMPORT_JOB, handler=handle, retry=retry)


def job_kinds(runtime: Runtime) -> list[JobKind]:
    """The import stage's job kinds, for the process that runs jobs."""
    return [import_job_kind(runtime)]
