"""The queue's SQL: claim with FOR UPDATE SKIP LOCKED, renew, settle, release, wake.

Built once per stage from its `Stage` description (table and column names come from code,
never from input). Every outcome is conditional on the claim's owner token, so a worker
whose lease was taken over can never overwrite the new holder's result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import BigInteger, Text

from haunt_fm.queue.stage import Stage

# One channel for every stage; the payload names the stage whose work was queued.
CHANNEL = "haunt_fm_work"
_ERROR_MAX = 2000


@dataclass(slots=True)
class Claim:
    """One claimed work item: its key, the attempt this is, and the columns the stage returns."""

    key: Any
    attempts: int
    owner: str
    data: dict[str, Any] = field(default_factory=dict)
    settled: bool = False
    lost: bool = False

    def __getitem__(self, name: str) -> Any:
        return self.data[name]


@cache
def _sql(stage: Stage) -> dict[str, TextClause]:
    c = stage.col
    t, k = stage.table, stage.key
    extra = "".join(f", {expr}" for expr in stage.returning)
    keys = bindparam("keys", type_=ARRAY(_key_type(stage)))
    status_set = f"{c('status')} = :status, " if stage.has_status else ""
    claimable = (
        f"{stage.pending_sql} AND ({stage.ready})"
        # Free, or its holder died (lease expired) with attempts left; exhausted ones wait for
        # `expire_exhausted` to fail them with a reason.
        f" AND ({c('lease_until')} IS NULL"
        f"      OR ({c('lease_until')} < now() AND {c('attempts')} < :max_attempts))"
        f" AND ({c('next_at')} IS NULL OR {c('next_at')} <= now())"
    )
    return {
        "claim": text(
            f"""
            UPDATE {t} t SET
                {c("lease_until")} = clock_timestamp() + make_interval(secs => :lease_seconds),
                {c("lease_owner")} = :owner,
                {c("attempts")} = t.{c("attempts")} + 1
            WHERE t.{k} IN (
                SELECT {k} FROM {t}
                WHERE {claimable}
                ORDER BY {stage.order_by}
                LIMIT :limit
                FOR UPDATE SKIP LOCKED)
            RETURNING t.{k} AS queue_key, t.{c("attempts")} AS queue_attempts{extra}
            """
        ),
        "renew": text(
            f"""
            UPDATE {t} SET {c("lease_until")} = clock_timestamp() + make_interval(secs => :lease_seconds)
            WHERE {k} = ANY(:keys) AND {c("lease_owner")} = :owner
            RETURNING {k}
            """
        ).bindparams(keys),
        "complete": text(
            f"""
            UPDATE {t} SET {status_set}{c("error")} = NULL, {c("next_at")} = CAST(:next_at AS timestamptz),
                {c("attempts")} = 0, {c("lease_until")} = NULL, {c("lease_owner")} = NULL
            WHERE {k} = :key AND {c("lease_owner")} = :owner
            RETURNING {k}
            """
        ),
        "retry": text(
            f"""
            UPDATE {t} SET {c("error")} = :error,
                {c("next_at")} = clock_timestamp() + make_interval(secs => :delay),
                {c("lease_until")} = NULL, {c("lease_owner")} = NULL
            WHERE {k} = :key AND {c("lease_owner")} = :owner
            RETURNING {k}
            """
        ),
        "fail": text(
            f"""
            UPDATE {t} SET {status_set}{c("error")} = :error, {c("next_at")} = CAST(:next_at AS timestamptz),
                {c("lease_until")} = NULL, {c("lease_owner")} = NULL
            WHERE {k} = :key AND {c("lease_owner")} = :owner
            RETURNING {k}
            """
        ),
        "release": text(
            f"""
            UPDATE {t} SET {c("lease_until")} = NULL, {c("lease_owner")} = NULL,
                {c("attempts")} = greatest({c("attempts")} - 1, 0),
                {c("next_at")} = CASE WHEN CAST(:delay AS double precision) > 0
                                      THEN clock_timestamp() + make_interval(secs => :delay)
                                      ELSE {c("next_at")} END
            WHERE {k} = ANY(:keys) AND {c("lease_owner")} = :owner
            """
        ).bindparams(keys),
        "expire": text(
            f"""
            UPDATE {t} SET {status_set}
                {c("error")} = :reason || coalesce(' The last error: ' || {c("error")}, ''),
                {c("next_at")} = CAST(:next_at AS timestamptz),
                {c("lease_until")} = NULL, {c("lease_owner")} = NULL
            WHERE {stage.pending_sql} AND {c("lease_until")} < now() AND {c("attempts")} >= :max_attempts
            RETURNING {k}
            """
        ),
        "pending": text(f"SELECT count(*) FROM {t} WHERE {stage.pending_sql}"),
    }


def _key_type(stage: Stage) -> Any:
    return Text if stage.key != "id" else BigInteger


async def claim(
    session: AsyncSession,
    stage: Stage,
    *,
    owner: str,
    limit: int,
    lease_seconds: float,
    max_attempts: int,
    params: dict[str, Any] | None = None,
) -> list[Claim]:
    """Lease up to `limit` claimable items to `owner`, in the stage's order (commit right after)."""
    rows = await session.execute(
        _sql(stage)["claim"],
        {
            "owner": owner,
            "limit": limit,
            "lease_seconds": lease_seconds,
            "max_attempts": max_attempts,
            **(params or {}),
        },
    )
    claims = []
    for row in rows.mappings():
        data = dict(row)
        key, attempts = data.pop("queue_key"), int(data.pop("queue_attempts"))
        claims.append(Claim(key=key, attempts=attempts, owner=owner, data=data))
    return claims


async def renew(
    session: AsyncSession, stage: Stage, *, keys: Sequence[Any], owner: str, lease_seconds: float
) -> set[Any]:
    """Extend the leases `owner` still holds; returns the keys it still holds."""
    if not keys:
        return set()
    rows = await session.execute(
        _sql(stage)["renew"], {"keys": list(keys), "owner": owner, "lease_seconds": lease_seconds}
    )
    return {r[0] for r in rows}


async def complete(
    session: AsyncSession,
    stage: Stage,
    claim: Claim,
    *,
    status: str = "done",
    next_at: datetime | None = None,
) -> bool:
    """Settle as done (or another settled status); False when the lease was lost meanwhile."""
    held = await _settle(session, stage, claim, "complete", {"status": status, "next_at": next_at})
    return held


async def retry(session: AsyncSession, stage: Stage, claim: Claim, *, error: str, delay: float) -> bool:
    """Pending again after `delay` seconds; the attempt stays counted."""
    return await _settle(session, stage, claim, "retry", {"error": error[:_ERROR_MAX], "delay": delay})


async def fail(
    session: AsyncSession,
    stage: Stage,
    claim: Claim,
    *,
    error: str,
    status: str = "failed",
    next_at: datetime | None = None,
) -> bool:
    """Failed (or another settled status) with a reason; `next_at` when it may be tried again."""
    params = {"error": error[:_ERROR_MAX], "status": status, "next_at": next_at}
    return await _settle(session, stage, claim, "fail", params)


async def release(
    session: AsyncSession, stage: Stage, claims: Sequence[Claim], *, delay: float = 0.0
) -> None:
    """Give leases back untouched (shutdown, throttled): the attempt does not count."""
    by_owner: dict[str, list[Any]] = {}
    for item in claims:
        if not item.settled:
            by_owner.setdefault(item.owner, []).append(item.key)
            item.settled = True
    for owner, keys in by_owner.items():
        await session.execute(_sql(stage)["release"], {"keys": keys, "owner": owner, "delay": delay})


async def expire_exhausted(
    session: AsyncSession,
    stage: Stage,
    *,
    max_attempts: int,
    reason: str,
    status: str = "failed",
    next_at: datetime | None = None,
    params: dict[str, Any] | None = None,
) -> list[Any]:
    """Fail items whose holders died with no attempts left (a crash loop must not retry forever)."""
    values = {"max_attempts": max_attempts, "reason": reason, "status": status, "next_at": next_at}
    return [r[0] for r in await session.execute(_sql(stage)["expire"], {**(params or {}), **values})]


async def pending_count(session: AsyncSession, stage: Stage, *, params: dict[str, Any] | None = None) -> int:
    """How many items of the stage are waiting (claimed or not)."""
    return int((await session.execute(_sql(stage)["pending"], params or {})).scalar_one())


async def notify(session: AsyncSession | AsyncConnection, stage: Stage | str) -> None:
    """Wake the stage's workers on every machine once this transaction commits."""
    name = stage.name if isinstance(stage, Stage) else stage
    await session.execute(text("SELECT pg_notify(:channel, :stage)"), {"channel": CHANNEL, "stage": name})


async def _settle(
    session: AsyncSession, stage: Stage, claim: Claim, which: str, params: dict[str, Any]
) -> bool:
    if claim.settled:
        return False
    claim.settled = True
    row = (
        await session.execute(_sql(stage)[which], {"key": claim.key, "owner": claim.owner, **params})
    ).first()
    if row is None:
        claim.lost = True
    return row is not None


# --- jobs --------------------------------------------------------------------------------

_ENQUEUE_SQL = text(
    """
    INSERT INTO jobs (kind, key, payload, next_at)
    VALUES (:kind, :key, CAST(:payload AS jsonb), CAST(:run_at AS timestamptz))
    ON CONFLICT (kind, key) WHERE status = 'pending' AND key IS NOT NULL DO NOTHING
    RETURNING id
    """
)
_JOB_PENDING_SQL = text("SELECT id FROM jobs WHERE kind = :kind AND key = :key AND status = 'pending'")
_JOB_COLUMNS = (
    "id, kind, key, payload, status, attempts, error, next_at, lease_until, progress, result, "
    "created_at, updated_at, finished_at"
)
_JOB_GET_SQL = text(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = :id")
_JOB_LIST_SQL = text(
    f"""
    SELECT {_JOB_COLUMNS} FROM jobs
    WHERE kind = ANY(:kinds) ORDER BY created_at DESC, id DESC LIMIT :limit
    """
).bindparams(bindparam("kinds", type_=ARRAY(Text)))
_JOB_PROGRESS_SQL = text(
    """
    UPDATE jobs SET progress = CAST(:progress AS jsonb), updated_at = now()
    WHERE id = :id AND lease_owner = :owner
    """
)
_JOB_FINISH_SQL = text(
    """
    UPDATE jobs SET result = CAST(:result AS jsonb), progress = coalesce(CAST(:progress AS jsonb), progress),
        finished_at = CASE WHEN status <> 'pending' THEN now() END, updated_at = now()
    WHERE id = :id
    """
)


async def enqueue_job(
    session: AsyncSession,
    *,
    kind: str,
    payload: dict[str, Any] | None = None,
    key: str | None = None,
    run_at: datetime | None = None,
) -> int | None:
    """Queue a job (and wake the job runners at commit); None when (kind, key) is already pending."""
    row = (
        await session.execute(
            _ENQUEUE_SQL,
            {"kind": kind, "key": key, "payload": json.dumps(payload or {}, default=str), "run_at": run_at},
        )
    ).first()
    if row is None:
        return None
    await notify(session, "jobs")
    return int(row[0])


_BRING_FORWARD_SQL = text(
    """
    UPDATE jobs
    SET next_at = least(coalesce(next_at, CAST(:run_at AS timestamptz)), CAST(:run_at AS timestamptz))
    WHERE kind = :kind AND key = :key AND status = 'pending'
    """
)


async def bring_forward(session: AsyncSession, *, kind: str, key: str, run_at: datetime) -> None:
    """Make the pending (kind, key) job due no later than `run_at`, and wake the job runners."""
    await session.execute(_BRING_FORWARD_SQL, {"kind": kind, "key": key, "run_at": run_at})
    await notify(session, "jobs")


async def pending_job(session: AsyncSession, *, kind: str, key: str) -> int | None:
    """The id of the pending job (kind, key), if one is queued."""
    row = (await session.execute(_JOB_PENDING_SQL, {"kind": kind, "key": key})).first()
    return None if row is None else int(row[0])


async def get_job(session: AsyncSession, *, job_id: int) -> dict[str, Any] | None:
    row = (await session.execute(_JOB_GET_SQL, {"id": job_id})).mappings().first()
    return None if row is None else dict(row)


async def list_jobs(session: AsyncSession, *, kinds: Sequence[str], limit: int) -> list[dict[str, Any]]:
    rows = await session.execute(_JOB_LIST_SQL, {"kinds": list(kinds), "limit": limit})
    return [dict(r) for r in rows.mappings()]


async def job_progress(session: AsyncSession, claim: Claim, *, progress: dict[str, Any]) -> None:
    """Publish a running job's progress (for /api/status and the job's own endpoint)."""
    await session.execute(
        _JOB_PROGRESS_SQL,
        {"id": claim.key, "owner": claim.owner, "progress": json.dumps(progress, default=str)},
    )


async def job_finished(
    session: AsyncSession, *, job_id: int, result: dict[str, Any] | None, progress: dict[str, Any] | None
) -> None:
    """Store a settled job's result (and final progress); stamps finished_at unless it is pending again."""
    await session.execute(
        _JOB_FINISH_SQL,
        {
            "id": job_id,
            "result": None if result is None else json.dumps(result, default=str),
            "progress": None if progress is None else json.dumps(progress, default=str),
        },
    )
