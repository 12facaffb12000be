"""What the queue needs to know about a stage: which rows are its work items and how they are ordered.

Every background stage keeps its work in rows of one table with the same six columns,
named with the stage's prefix (`preview_`, `embedding_`, ...):

    {prefix}status       pending | done | failed | stage-specific settled states (optional)
    {prefix}attempts     claims since the last success (a crashed claim counts too)
    {prefix}error        the last failure, as a sentence
    {prefix}next_at      not claimable before this (backoff, scheduled runs)
    {prefix}lease_until  the claim's lease; renewed by the holder's heartbeat while it works
    {prefix}lease_owner  the claim's token: only its holder may record an outcome

The status columns stay on the stage's own table because they serve the stage's ordering
(listened tracks first, then by discovery score) and one GROUP BY counts every stage.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stage:
    """A background stage: its table, key, column prefix, claim order and claimable predicate."""

    name: str  # also the NOTIFY payload that wakes its workers
    table: str
    key: str = "id"
    prefix: str = ""
    order_by: str = "id"
    # SQL predicate (over the table, unaliased) a row must meet to be work at all. Default:
    # its status is 'pending'. Stages without a status column give their own.
    pending: str | None = None
    # Extra SQL predicate for "ready now" (e.g. a preview URL is known).
    ready: str = "true"
    # Extra columns (SQL expressions over the table aliased `t`) returned with each claim.
    returning: tuple[str, ...] = ()
    has_status: bool = True

    def col(self, name: str) -> str:
        """The stage's column for `name` (status, attempts, error, next_at, lease_until, lease_owner)."""
        return f"{self.prefix}{name}"

    @property
    def pending_sql(self) -> str:
        return self.pending if self.pending is not None else f"{self.col('status')} = 'pending'"
