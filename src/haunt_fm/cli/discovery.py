"""`haunt-fm discover` (POST /api/admin/discover): in-process with a progress bar, or on a remote service."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from haunt_fm.cli.backend import Call, Local, execute, request
from haunt_fm.cli.common import JsonOption, fail, need_lastfm_key, remote_url

if TYPE_CHECKING:
    from haunt_fm.pipeline.discovery import service
    from haunt_fm.pipeline.discovery.schemas import DiscoverOut


def register(app: typer.Typer) -> None:
    app.command("discover")(discover)


class _Reporter:
    """A rich progress bar on a terminal; one line per seed otherwise (logs, CI, pipes)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.task: Any = None
        self.new = 0

    def __enter__(self) -> _Reporter:
        if self.console.is_terminal:
            self.bar = Progress(
                TextColumn("[bold]discover"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("seeds · {task.fields[new]} new candidates · {task.fields[seed]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, event: service.Progress) -> None:
        self.new += event.new
        if event.seed is None:
            if self.bar is not None:
                self.task = self.bar.add_task("discover", total=event.total, new=0, seed="")
            else:
                self.console.print(f"discover: {event.total} seed(s) to expand", highlight=False)
            return
        label = f"{event.seed.artist} - {event.seed.title}"
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=event.done, new=self.new, seed=label[:40])
            if event.outcome == "failed":
                self.bar.console.print(f"[red]failed[/red] {label}: {event.error}", highlight=False)
            return
        detail = {
            "expanded": f"{event.similar} similar, {event.new} new",
            "unknown": "no similar tracks on Last.fm",
            "skipped": "skipped (expanded by another run)",
            "failed": f"failed: {event.error}",
        }.get(event.outcome, event.outcome)
        width = len(str(event.total))
        self.console.print(
            f"[{event.done:>{width}}/{event.total}] {label}: {detail}", highlight=False, markup=False
        )


def discover(
    ctx: typer.Context,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", min=1, max=500, metavar="N", help="Similar tracks asked for per seed, 1..500."
        ),
    ] = 50,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", "-p", metavar="NAME", help="Only this profile's listened tracks (default: all)."
        ),
    ] = None,
    max_seeds: Annotated[
        int | None,
        typer.Option("--max-seeds", min=1, metavar="N", help="Expand at most this many seeds now."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Also expand seeds expanded recently.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Expand listened tracks through Last.fm into new candidates, with progress.

    Preview lookup and embedding of the new candidates go on in the background
    (`haunt-fm status`). Ctrl-C keeps the seeds expanded so far.
    """
    from haunt_fm.pipeline.discovery import service
    from haunt_fm.pipeline.discovery.schemas import DiscoverIn, DiscoverOut

    remote = remote_url(ctx)
    need_lastfm_key(remote, what="Discovery")
    body = request(
        DiscoverIn,
        options={"limit": "--limit", "profile": "--profile", "max_seeds": "--max-seeds"},
        limit=limit,
        profile=profile,
        max_seeds=max_seeds,
        force=force,
    )
    console = Console(stderr=True)
    reporter = _Reporter(console)

    async def local(rt: Local) -> DiscoverOut:
        with reporter:
            return await service.discover(
                session_factory=rt.runtime.sessions,
                settings=rt.settings,
                http=rt.runtime.http,
                progress=reporter,
                limit=body.limit,
                profile=body.profile,
                max_seeds=body.max_seeds,
                force=body.force,
            )

    call = Call(
        "POST",
        "/api/admin/discover",
        DiscoverOut,
        local,
        body=body,
        timeout=None,
        pool_size=service.DISCOVERY_CONCURRENCY + 2,
    )
    if remote is not None:
        console.print(
            f"discovering on {remote} (progress: `haunt-fm status`) ...", highlight=False, markup=False
        )
    try:
        answer = execute(ctx, call)
    except KeyboardInterrupt:
        raise fail("discovery interrupted; the seeds expanded so far are kept.") from None
    answer.show(as_json=as_json, render=render_discovery)


def render_discovery(result: DiscoverOut) -> None:
    lines = [
        f"seeds expanded:          {result.seeds}",
        f"seeds skipped:           {result.seeds_skipped} (expanded recently; --force to redo)",
        f"seeds remaining:         {result.seeds_remaining}",
        f"seeds failed:            {result.seeds_failed}",
        f"candidates new:          {result.candidates_new}",
        f"candidates seen:         {result.candidates_seen}",
        f"preview lookups queued:  {result.preview_lookups_queued}",
        f"took:                    {result.elapsed_s:.1f} s",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    for error in result.errors:
        sys.stdout.write(f"  error: {error.artist} - {error.title}: {error.error}\n")
