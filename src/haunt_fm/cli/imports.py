"""`haunt-fm import lastfm | listenbrainz`: queue an import and run it in this process, with a progress bar.

The import is the same as the API's (an import row and its job): this process claims the
job and runs it. Should a `serve` on the same database hold it already, the bar follows it
there. Interrupted (Ctrl-C), the job keeps its place: the same command (or a running
`serve`) continues it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from haunt_fm.config import Settings
from haunt_fm.pipeline.imports import service
from haunt_fm.pipeline.imports.schemas import ImportOut
from haunt_fm.pipeline.imports.tasks import import_job_kind
from haunt_fm.queue import JobRunner
from haunt_fm.runtime import Runtime, open_runtime

POLL_SECONDS = 1.0
LOG_EVERY_SECONDS = 2.0

Start = Callable[[Runtime], Awaitable[ImportOut]]


def _size(value: int | None) -> str:
    if value is None:
        return "?"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value} B"


def _amounts(counts: service.Counts) -> str:
    """`12.0 MB of 80.3 MB` (an export) or `400 of 3,000 scrobbles` (Last.fm)."""
    if counts.unit == "bytes":
        return f"{_size(counts.done)} of {_size(counts.total)}"
    total = "?" if counts.total is None else f"{counts.total:,}"
    return f"{counts.done:,} of {total} {counts.unit}"


class _Reporter:
    """A rich progress bar on a terminal; a line every few seconds otherwise (logs, CI, pipes)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.label = ""
        self._last_line = 0.0
        self._errors: set[str] = set()

    def __enter__(self) -> _Reporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def begin(self, started: ImportOut) -> None:
        source = "Last.fm" if started.source == "lastfm" else "ListenBrainz"
        what = started.user if started.source == "lastfm" else started.filename
        self.label = f"import {started.import_id}: {source} {what} → {started.profile}"
        resumed = " (resuming)" if started.imported or started.duplicates else ""
        if self.console.is_terminal:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[amount]} · {task.fields[counts]}"),
                TimeElapsedColumn(),
                console=self.console,
            )
            self.bar.start()
            self.task = self.bar.add_task(
                self.label + resumed, total=started.progress.total, amount="", counts=""
            )
        else:
            self.console.print(f"{self.label}{resumed}", highlight=False, markup=False)
        self.show(self._counts(started), force=True)

    @staticmethod
    def _counts(item: ImportOut) -> service.Counts:
        p = item.progress
        return service.Counts(item.imported, item.duplicates, item.skipped, p.done, p.total, p.unit)

    def show(self, counts: service.Counts, *, force: bool = False) -> None:
        amount = _amounts(counts)
        summary = (
            f"{counts.imported:,} imported, {counts.duplicates:,} duplicates, {counts.skipped:,} skipped"
        )
        if self.bar is not None and self.task is not None:
            self.bar.update(
                self.task, completed=counts.done, total=counts.total, amount=amount, counts=summary
            )
            return
        now = time.monotonic()
        if force or now - self._last_line >= LOG_EVERY_SECONDS:
            self._last_line = now
            self.console.print(f"  {amount}: {summary}", highlight=False, markup=False)

    async def batch(self, counts: service.Counts) -> None:
        self.show(counts)

    def follow(self, item: ImportOut) -> None:
        """The import as stored (another process may run it, or it waits for a retry)."""
        self.show(self._counts(item))
        if item.error and item.status == "running" and item.error not in self._errors:
            self._errors.add(item.error)
            self.console.print(f"[yellow]{item.error}[/yellow]", highlight=False)


async def _run(settings: Settings, url: str, *, start: Start, reporter: _Reporter) -> ImportOut:
    async with open_runtime(settings, database_url=url, pool_size=4, listen=False) as runtime:
        started = await start(runtime)
        assert started.job_id is not None
        reporter.begin(started)
        kind = import_job_kind(runtime, on_progress=reporter.batch)
        runner = JobRunner(sessions=runtime.sessions, kinds={kind.name: kind})
        while True:
            await runner.run_job(started.job_id)
            async with runtime.sessions() as session:
                current = await service.get(session, import_id=started.import_id)
            if current.status != "running":
                reporter.show(_Reporter._counts(current), force=True)
                return current
            reporter.follow(current)
            await asyncio.sleep(POLL_SECONDS)


def run(settings: Settings, url: str, *, start: Start, as_json: bool) -> ImportOut:
    """Queue an import (or find the one to resume) and run it here; prints the outcome on stdout."""
    console = Console(stderr=True)
    with _Reporter(console) as reporter:
        result = asyncio.run(_run(settings, url, start=start, reporter=reporter))
    if as_json:
        sys.stdout.write(json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
        return result
    lines = [
        f"import {result.import_id}: {result.status}",
        f"imported:    {result.imported}",
        f"duplicates:  {result.duplicates} (already stored)",
        f"skipped:     {result.skipped}",
    ]
    for problem in result.problems[:20]:
        where = f"line {problem.line}" if problem.line is not None else "scrobble"
        lines.append(f"  {where}: {problem.reason}")
    if result.skipped > len(result.problems[:20]):
        lines.append(f"  … GET /api/admin/imports/{result.import_id} lists the first 100")
    sys.stdout.write("\n".join(lines) + "\n")
    return result
