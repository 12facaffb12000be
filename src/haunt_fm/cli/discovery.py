"""`haunt-fm discover`: the discovery service from the command line, with a progress bar."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from haunt_fm.config import Settings
from haunt_fm.pipeline.discovery import service
from haunt_fm.pipeline.discovery.schemas import DiscoverOut
from haunt_fm.runtime import open_runtime


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


async def _run(settings: Settings, url: str, *, reporter: _Reporter, **options: Any) -> DiscoverOut:
    async with open_runtime(
        settings, database_url=url, pool_size=service.DISCOVERY_CONCURRENCY + 2, listen=False
    ) as runtime:
        return await service.discover(
            session_factory=runtime.sessions,
            settings=settings,
            http=runtime.http,
            progress=reporter,
            **options,
        )


def run(
    settings: Settings,
    url: str,
    *,
    limit: int,
    profile: str | None,
    max_seeds: int | None,
    force: bool,
    as_json: bool,
) -> DiscoverOut:
    """Run discovery against `url`, drawing progress on stderr and the result on stdout."""
    console = Console(stderr=True)
    with _Reporter(console) as reporter:
        result = asyncio.run(
            _run(
                settings,
                url,
                reporter=reporter,
                limit=limit,
                profile=profile,
                max_seeds=max_seeds,
                force=force,
            )
        )
    if as_json:
        sys.stdout.write(json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    else:
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
    return result
