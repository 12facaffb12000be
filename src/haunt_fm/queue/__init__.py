"""The one lease queue every background stage runs on (see docs/ARCHITECTURE.md, "The queue").

- `Stage`: which rows of which table are a stage's work, in what order.
- `StageRunner`: claim (FOR UPDATE SKIP LOCKED) → hold (heartbeat-renewed lease) → settle.
- outcomes: `complete`, `retry`, `fail`, `release` — all conditional on the claim's token.
- `notify` / `Wakeups`: PostgreSQL LISTEN/NOTIFY wakes idle workers on every machine.
- `JobKind` / `JobRunner` / `enqueue`: one-off and periodic jobs on the same machinery.
"""

from haunt_fm.queue.jobs import JobContext, JobKind, JobRunner, enqueue, jobs_stage
from haunt_fm.queue.lease import Held, hold
from haunt_fm.queue.repository import (
    Claim,
    complete,
    enqueue_job,
    fail,
    get_job,
    list_jobs,
    notify,
    pending_count,
    release,
    retry,
)
from haunt_fm.queue.runner import Expiry, StageRunner, unsettled, worker_id
from haunt_fm.queue.stage import Stage
from haunt_fm.queue.wakeup import Wakeups

__all__ = [
    "Claim",
    "Expiry",
    "Held",
    "JobContext",
    "JobKind",
    "JobRunner",
    "Stage",
    "StageRunner",
    "Wakeups",
    "complete",
    "enqueue",
    "enqueue_job",
    "fail",
    "get_job",
    "hold",
    "jobs_stage",
    "list_jobs",
    "notify",
    "pending_count",
    "release",
    "retry",
    "unsettled",
    "worker_id",
]
