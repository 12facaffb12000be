"""The job kinds of every stage, gathered for the process that runs jobs (`serve`).

Each stage that has background jobs declares them in its `tasks.py` as a function
`job_kinds(runtime) -> list[JobKind]`; this module is the one place that knows them all.
"""

from __future__ import annotations

from haunt_fm.queue import JobKind, JobRunner
from haunt_fm.runtime import Runtime


def job_kinds(runtime: Runtime) -> dict[str, JobKind]:
    """Every job kind this process can run, by name."""
    from haunt_fm.pipeline.discovery import tasks as discovery
    from haunt_fm.pipeline.imports import tasks as imports
    from haunt_fm.pipeline.listens import tasks as listens
    from haunt_fm.pipeline.tags import tasks as tags

    kinds: list[JobKind] = [
        *listens.job_kinds(runtime),
        *discovery.job_kinds(runtime),
        *tags.job_kinds(runtime),
        *imports.job_kinds(runtime),
    ]
    return {kind.name: kind for kind in kinds}


def job_runner(runtime: Runtime) -> JobRunner | None:
    """A runner for every known job kind (None when there is none)."""
    kinds = job_kinds(runtime)
    if not kinds:
        return None
    return JobRunner(sessions=runtime.sessions, kinds=kinds, wakeups=runtime.wakeups)
