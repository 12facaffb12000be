"""`haunt-fm import lastfm | listenbrainz` (POST /api/admin/import/*), with a progress bar.

In-process the import is the same as the API's (an import row and its job): this process
claims the job and runs it. Should a `serve` on the same database hold it already, the bar
follows it there. Interrupted (Ctrl-C), the job keeps its place: the same command (or a
running `serve`) continues it.

With --url the service runs the import (a ListenBrainz export is uploaded, streamed from
disk) and the command follows it (GET /api/admin/imports/{id}) until it ends; Ctrl-C stops
following, not the import.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from haunt_fm.cli.backend import (
    Answer,
    Call,
    CommandError,
    Local,
    RemoteBackend,
    in_transaction,
    request,
)
from haunt_fm.cli.common import (
    JsonOption,
    ProfileOption,
    database,
    fail,
    need_lastfm_key,
    remote_url,
    say,
    settings,
    upgrade_schema,
)
from haunt_fm.cli.render import size

if TYPE_CHECKING:
    from haunt_fm.config import Settings
    from haunt_fm.pipeline.imports.schemas import ImportOut
    from haunt_fm.pipeline.imports.service import Counts

POLL_SECONDS = 1.0
LOG_EVERY_SECONDS = 2.0
# Problems listed after the counts; `--json` has the first 100.
PROBLEMS_SHOWN = 20

_SINCE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]

import_app = typer.Typer(help="Import listening history (Last.fm, ListenBrainz).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")


@import_app.command("lastfm")
def import_lastfm(
    ctx: typer.Context,
    user: Annotated[
        str, typer.Option("--user", metavar="NAME", help="The Last.fm username.", show_default=False)
    ],
    profile: ProfileOption = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since",
            formats=_SINCE_FORMATS,
            metavar="WHEN",
            help="Only scrobbles from then on: a date (2025-01-01, UTC) or an ISO-8601 time.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import a Last.fm user's scrobbles as listens, with progress.

    Running it again while an import of that user is unfinished continues that import.
    """
    from haunt_fm.pipeline.imports import service
    from haunt_fm.pipeline.imports.schemas import ImportOut, LastfmImportIn

    remote = remote_url(ctx)
    need_lastfm_key(remote, what="Importing from Last.fm")
    body = request(
        LastfmImportIn,
        options={"user": "--user", "profile": "--profile", "since": "--since"},
        user=user,
        profile=profile,
        since=since,
    )

    async def local(rt: Local) -> ImportOut:
        return await service.start_lastfm(
            sessions=rt.runtime.sessions,
            settings=rt.settings,
            http=rt.runtime.http,
            user=body.user,
            profile=body.profile,
            since=body.since,
        )

    call = Call("POST", "/api/admin/import/lastfm", ImportOut, local, body=body, options={"user": "--user"})
    _import(call, remote=remote, as_json=as_json)


@import_app.command("listenbrainz")
def import_listenbrainz(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="The export: a JSON array of listens or JSON lines.", show_default=False
        ),
    ],
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a ListenBrainz export file, with progress (in place here; uploaded with --url).

    Running it again on the same file while its import is unfinished continues that import.
    """
    from haunt_fm.pipeline.imports import service
    from haunt_fm.pipeline.imports.schemas import ImportOut

    remote = remote_url(ctx)

    async def local(rt: Local) -> ImportOut:
        return await service.start_listenbrainz_file(sessions=rt.runtime.sessions, path=file, profile=profile)

    if remote is not None and not file.expanduser().is_file():
        raise fail(f"There is no file {str(file.expanduser().resolve())!r}.")
    call = Call(
        "POST",
        "/api/admin/import/listenbrainz",
        ImportOut,
        local,
        params={"profile": profile},
        upload=file,
        timeout=None,
    )
    _import(call, remote=remote, as_json=as_json)


def _import(call: Call[ImportOut], *, remote: str | None, as_json: bool) -> None:
    """Start the import here or on `remote`, follow it to its end, print the outcome."""
    current = settings()
    reporter = _Reporter(Console(stderr=True))
    try:
        with reporter:
            if remote is not None:
                answer = asyncio.run(_follow(RemoteBackend(current, remote), call, reporter))
            else:
                with database(current, attach=True) as url:
                    upgrade_schema(url)
                    answer = asyncio.run(_run(current, url, call, reporter))
    except CommandError as exc:
        raise fail(exc.message) from None
    except KeyboardInterrupt:
        if remote is not None and reporter.import_id is not None:
            raise fail(
                f"stopped following import {reporter.import_id}; haunt-fm at {remote} goes on with it "
                "(`haunt-fm status` shows it)."
            ) from None
        raise fail(
            "import interrupted; it keeps its place: run the same command again to continue it "
            "(a running `haunt-fm serve` continues it too)."
        ) from None
    answer.show(as_json=as_json, render=render_import)
    result = answer.model
    if result.status == "failed":
        raise fail(result.error or "the import failed.")


async def _run(current: Settings, url: str, call: Call[ImportOut], reporter: _Reporter) -> Answer[ImportOut]:
    """Queue the import (or find the one to resume) and run its job in this process."""
    from haunt_fm.errors import AppError
    from haunt_fm.pipeline.imports import service
    from haunt_fm.pipeline.imports.tasks import import_job_kind
    from haunt_fm.queue import JobRunner
    from haunt_fm.runtime import open_runtime

    async with open_runtime(current, database_url=url, pool_size=4, listen=False) as runtime:
        try:
            started = await call.local(Local(runtime))
        except AppError as exc:
            raise CommandError(exc.message) from None
        assert started.job_id is not None
        reporter.begin(started)
        kind = import_job_kind(runtime, on_progress=reporter.batch)
        runner = JobRunner(sessions=runtime.sessions, kinds={kind.name: kind})
        while True:
            await runner.run_job(started.job_id)
            async with runtime.sessions() as session:
                now = await service.get(session, import_id=started.import_id)
            if now.status != "running":
                reporter.show(_counts(now), force=True)
                return Answer(now.model_dump(mode="json"), type(now), now)
            reporter.follow(now)
            await asyncio.sleep(POLL_SECONDS)


async def _follow(backend: RemoteBackend, call: Call[ImportOut], reporter: _Reporter) -> Answer[ImportOut]:
    """Start the import on the remote service and follow it until it ends."""
    from haunt_fm.pipeline.imports import service
    from haunt_fm.pipeline.imports.schemas import ImportOut

    answer = await backend.call(call)
    started = answer.model
    reporter.begin(started)
    import_id = started.import_id
    poll = Call(
        "GET",
        f"/api/admin/imports/{import_id}",
        ImportOut,
        in_transaction(lambda s, _: service.get(s, import_id=import_id)),
    )
    while answer.model.status == "running":
        await asyncio.sleep(POLL_SECONDS)
        answer = await backend.call(poll)
        reporter.follow(answer.model)
    reporter.show(_counts(answer.model), force=True)
    return answer


# --- progress and output ----------------------------------------------------------------------


def _amounts(counts: Counts) -> str:
    """`12.0 MB of 80.3 MB` (an export) or `400 of 3,000 scrobbles` (Last.fm)."""
    if counts.unit == "bytes":
        return f"{size(counts.done)} of {size(counts.total)}"
    total = "?" if counts.total is None else f"{counts.total:,}"
    return f"{counts.done:,} of {total} {counts.unit}"


def _counts(item: ImportOut) -> Counts:
    from haunt_fm.pipeline.imports.service import Counts

    p = item.progress
    return Counts(item.imported, item.duplicates, item.skipped, p.done, p.total, p.unit)


class _Reporter:
    """A rich progress bar on a terminal; a line every few seconds otherwise (logs, CI, pipes)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.import_id: int | None = None
        self._last_line = 0.0
        self._errors: set[str] = set()

    def __enter__(self) -> _Reporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def begin(self, started: ImportOut) -> None:
        self.import_id = started.import_id
        source = "Last.fm" if started.source == "lastfm" else "ListenBrainz"
        what = started.user if started.source == "lastfm" else started.filename
        label = f"import {started.import_id}: {source} {what} → {started.profile}"
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
            self.task = self.bar.add_task(label + resumed, total=started.progress.total, amount="", counts="")
        else:
            self.console.print(f"{label}{resumed}", highlight=False, markup=False)
        self.show(_counts(started), force=True)

    def show(self, counts: Counts, *, force: bool = False) -> None:
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

    async def batch(self, counts: Counts) -> None:
        self.show(counts)

    def follow(self, item: ImportOut) -> None:
        """The import as stored (another process may run it, or it waits for a retry)."""
        self.show(_counts(item))
        if item.error and item.status == "running" and item.error not in self._errors:
            self._errors.add(item.error)
            self.console.print(item.error, style="yellow", highlight=False, markup=False)


def render_import(result: ImportOut) -> None:
    """The outcome: counts, then the first problems with their lines."""
    say(f"import {result.import_id}: {result.status}")
    say(f"imported:    {result.imported}")
    say(f"duplicates:  {result.duplicates} (already stored)")
    say(f"skipped:     {result.skipped}")
    shown = result.problems[:PROBLEMS_SHOWN]
    for problem in shown:
        where = f"line {problem.line}" if problem.line is not None else "scrobble"
        say(f"  {where}: {problem.reason}")
    if result.skipped > len(shown):
        say(f"  … and {result.skipped - len(shown)} more (--json lists the first 100)")
