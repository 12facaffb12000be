"""Import rows: create, read (with the state of their job), advance batch by batch, finish."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_CREATE_SQL = text(
    """
    INSERT INTO imports (source, profile, params, total, unit)
    VALUES (:source, :profile, CAST(:params AS jsonb), :total, :unit)
    RETURNING id
    """
)
_SET_JOB_SQL = text("UPDATE imports SET job_id = :job_id WHERE id = :id")

# An import is "running" until its job says otherwise: a job the queue failed for good (its
# holders crashed too often) fails the import with the job's reason.
_GONE = "(i.status = 'running' AND j.status = 'failed')"
_SELECT = f"""
    SELECT i.id AS import_id, i.source, i.profile, i.params,
           CASE WHEN {_GONE} THEN 'failed' ELSE i.status END AS status,
           i.imported, i.duplicates, i.skipped, i.done, i.total, i.unit, i.problems, i.cursor,
           CASE WHEN {_GONE} THEN coalesce(j.error, i.error) ELSE i.error END AS error,
           i.job_id, i.created_at, i.updated_at,
           CASE WHEN {_GONE} THEN coalesce(j.finished_at, j.updated_at) ELSE i.finished_at END AS finished_at
    FROM imports i LEFT JOIN jobs j ON j.id = i.job_id
"""
_GET_SQL = text(_SELECT + " WHERE i.id = :id")
_LIST_SQL = text(_SELECT + " ORDER BY i.created_at DESC, i.id DESC LIMIT :limit")
_RUNNING_SQL = text(_SELECT + f" WHERE i.status = 'running' AND NOT {_GONE} ORDER BY i.id")
_LAST_FINISHED_SQL = text(
    _SELECT + f" WHERE i.status <> 'running' OR {_GONE} ORDER BY i.updated_at DESC, i.id DESC LIMIT 1"
)
# The import of the same thing still running (to resume it instead of starting another).
_FIND_RUNNING_SQL = text(
    _SELECT
    + f"""
    WHERE i.status = 'running' AND NOT {_GONE} AND i.source = :source AND i.profile = :profile
      AND i.params @> CAST(:match AS jsonb)
    ORDER BY i.id DESC LIMIT 1
    """
)

# Only the holder of the import's job lease may write (`:owner`): a worker that lost the
# lease to another never adds its batch's counts a second time.
_ADVANCE_SQL = text(
    """
    UPDATE imports i SET imported = i.imported + :imported, duplicates = i.duplicates + :duplicates,
        skipped = i.skipped + :skipped, problems = i.problems || CAST(:problems AS jsonb),
        cursor = CAST(:cursor AS jsonb), done = :done, total = :total, error = NULL, updated_at = now()
    WHERE i.id = :id AND i.status = 'running'
      AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = i.job_id AND j.lease_owner = :owner)
    RETURNING i.id
    """
)
_FINISH_SQL = text(
    """
    UPDATE imports SET status = :status, error = :error, updated_at = now(),
        finished_at = CASE WHEN :status = 'running' THEN NULL ELSE now() END
    WHERE id = :id AND status = 'running'
      AND (CAST(:owner AS text) IS NULL
           OR EXISTS (SELECT 1 FROM jobs j WHERE j.id = imports.job_id AND j.lease_owner = :owner))
    RETURNING id
    """
)


async def create(
    session: AsyncSession, *, source: str, profile: str, params: dict[str, Any], total: int | None, unit: str
) -> int:
    """A new running import; returns its id."""
    values = {
        "source": source,
        "profile": profile,
        "params": json.dumps(params),
        "total": total,
        "unit": unit,
    }
    return int((await session.execute(_CREATE_SQL, values)).scalar_one())


async def set_job(session: AsyncSession, *, import_id: int, job_id: int) -> None:
    await session.execute(_SET_JOB_SQL, {"id": import_id, "job_id": job_id})


async def get(session: AsyncSession, *, import_id: int) -> dict[str, Any] | None:
    row = (await session.execute(_GET_SQL, {"id": import_id})).mappings().first()
    return None if row is None else dict(row)


async def latest(session: AsyncSession, *, limit: int) -> list[dict[str, Any]]:
    """Imports, newest first."""
    return [dict(r) for r in (await session.execute(_LIST_SQL, {"limit": limit})).mappings()]


async def running(session: AsyncSession) -> list[dict[str, Any]]:
    """Imports still running (or waiting to be retried), oldest first."""
    return [dict(r) for r in (await session.execute(_RUNNING_SQL)).mappings()]


async def last_finished(session: AsyncSession) -> dict[str, Any] | None:
    row = (await session.execute(_LAST_FINISHED_SQL)).mappings().first()
    return None if row is None else dict(row)


async def find_running(
    session: AsyncSession, *, source: str, profile: str, match: dict[str, Any]
) -> dict[str, Any] | None:
    """The running import of `source` into `profile` whose params contain `match`, if any."""
    params = {"source": source, "profile": profile, "match": json.dumps(match)}
    row = (await session.execute(_FIND_RUNNING_SQL, params)).mappings().first()
    return None if row is None else dict(row)


async def advance(
    session: AsyncSession,
    *,
    import_id: int,
    owner: str,
    imported: int,
    duplicates: int,
    skipped: int,
    problems: list[dict[str, Any]],
    cursor: dict[str, Any],
    done: int,
    total: int | None,
) -> bool:
    """Add a batch's counts and move the cursor; False when `owner` no longer holds the import's job."""
    params = {
        "id": import_id,
        "owner": owner,
        "imported": imported,
        "duplicates": duplicates,
        "skipped": skipped,
        "problems": json.dumps(problems),
        "cursor": json.dumps(cursor),
        "done": done,
        "total": total,
    }
    return (await session.execute(_ADVANCE_SQL, params)).first() is not None


async def finish(
    session: AsyncSession, *, import_id: int, status: str, error: str | None, owner: str | None = None
) -> bool:
    """Settle a running import (`running` keeps it running with an error: it is retried).

    With `owner`, only while that claim still holds the import's job.
    """
    params = {"id": import_id, "status": status, "error": error, "owner": owner}
    return (await session.execute(_FINISH_SQL, params)).first() is not None
