"""`haunt-fm radio start|stop|status`: the same radio service as /api/radio, run in-process.

`start` queues the first batch itself; keeping the radio going afterwards is the job of the
radio loop inside a running `haunt-fm serve` on the same database (it reads the speaker's
listens and adds the next batches).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from haunt_fm.cli.playlists import invalid_options
from haunt_fm.config import Settings, get_settings
from haunt_fm.db.session import transaction
from haunt_fm.errors import AppError, Invalid
from haunt_fm.pipeline.radio import service
from haunt_fm.pipeline.radio.schemas import RadioIn, RadioList, RadioOut, RadioStarted, clean_speaker
from haunt_fm.pipeline.recommendations.vibe import make_vibe_encoder
from haunt_fm.runtime import Runtime, open_runtime

app = typer.Typer(help="Endless radio on a speaker: start, stop, status.", no_args_is_help=True)

T = TypeVar("T")


def _in_process(work: Callable[[Settings, Runtime], Awaitable[T]]) -> T:
    """Run `work` against the configured database (embedded or HAUNTFM_DATABASE_URL)."""
    from haunt_fm import cli

    settings = get_settings()
    cli._setup_logging(settings)

    async def main(url: str) -> T:
        async with open_runtime(settings, database_url=url, pool_size=3) as runtime:
            return await work(settings, runtime)

    try:
        with cli.database(settings, attach=True) as url:
            cli._upgrade(url)
            return asyncio.run(main(url))
    except AppError as exc:
        raise cli._fail(exc.message) from None


def build_request(
    *, speaker: str, profile: str | None, vibe: str | None, alpha: float, known_pct: float, batch: int
) -> RadioIn:
    """The request the options describe; Invalid with the reasons when they don't validate."""
    try:
        return RadioIn(
            speaker_entity=speaker, profile=profile, vibe=vibe, alpha=alpha, known_pct=known_pct, batch=batch
        )
    except ValidationError as exc:
        raise invalid_options(exc) from None


@app.command()
def start(
    speaker: str = typer.Option(..., "--speaker", help="Music Assistant player entity id (the `_2` one)."),
    profile: str | None = typer.Option(None, "--profile", help="Whose taste (default: the speaker's)."),
    vibe: str | None = typer.Option(None, "--vibe", help="Mood text, e.g. 'chill ambient'."),
    alpha: float = typer.Option(0.5, "--alpha", help="Taste weight against the vibe, 0..1."),
    known_pct: float = typer.Option(20, "--known-pct", help="Share of known favourites per batch, 0..100."),
    batch: int = typer.Option(10, "--batch", help="Tracks queued at a time, 3..50."),
) -> None:
    """Start a radio on a speaker (as POST /api/radio); a running `serve` keeps it going.

    Exit status 2 when Home Assistant could not queue the first batch (the radio retries it).
    """

    async def run(settings: Settings, runtime: Runtime) -> RadioStarted:
        request = build_request(
            speaker=speaker, profile=profile, vibe=vibe, alpha=alpha, known_pct=known_pct, batch=batch
        )
        encoder = make_vibe_encoder(settings, runtime.sessions, wakeups=runtime.wakeups)
        return await service.start_radio(
            runtime.sessions, request=request, settings=settings, vibe_encoder=encoder
        )

    started = _in_process(run)
    console = Console()
    render(started, console)
    first = started.first_playback
    colour = {"played": "green", "partial": "yellow"}.get(first.status, "red")
    console.print(
        f"Queued on {started.speaker_entity}: [{colour}]{first.status}[/{colour}], {first.queued} of "
        f"{len(started.queued)}",
        highlight=False,
    )
    if first.error:
        console.print(first.error, highlight=False, markup=False)
    for warning in started.warnings:
        console.print(f"note: {warning}", highlight=False, markup=False)
    if first.status == "failed":
        raise typer.Exit(code=2)


@app.command()
def stop(
    speaker: str = typer.Option(..., "--speaker", help="The speaker whose radio to stop."),
    stop_playback: bool = typer.Option(False, "--stop-playback", help="Also stop the player."),
) -> None:
    """Stop the radio on a speaker (as DELETE /api/radio/{speaker_entity})."""

    async def run(settings: Settings, runtime: Runtime) -> Any:
        try:
            entity = clean_speaker(speaker)
        except ValueError as exc:
            raise Invalid(f"{exc}.") from None
        return await service.stop_radio(
            runtime.sessions, speaker=entity, stop_playback=stop_playback, settings=settings
        )

    stopped = _in_process(run)
    console = Console()
    console.print(
        f"Radio {stopped.radio_id} on {stopped.speaker_entity} stopped "
        f"({len(stopped.played)} played, {len(stopped.skipped)} skipped).",
        highlight=False,
    )
    if stopped.stop_playback.requested:
        if stopped.stop_playback.status == "stopped":
            console.print("The player is stopped.", highlight=False)
        else:
            console.print(f"The player could not be stopped: {stopped.stop_playback.error}", markup=False)


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="Print the answer of GET /api/radio as JSON."),
    limit: int = typer.Option(20, "--limit", min=1, max=500, help="Radios to show, 1..500."),
) -> None:
    """Radios playing now and ended in the last day (as GET /api/radio)."""

    async def run(_settings: Settings, runtime: Runtime) -> RadioList:
        async with transaction(runtime.sessions) as session:
            return await service.list_radios(session, limit=limit)

    radios = _in_process(run)
    if as_json:
        typer.echo(json.dumps(radios.model_dump(mode="json"), indent=2))
        return
    console = Console()
    if not radios.radios:
        console.print("No radio has played in the last day. Start one: haunt-fm radio start --speaker …")
        return
    for radio in radios.radios:
        render(radio, console)


def render(radio: RadioOut, console: Console) -> None:
    """One radio: what it is, what plays now and next, what was skipped, why it ended."""
    if radio.active:
        state = "[green]on[/green]"
    else:
        state = f"[red]ended[/red] ({radio.ended_reason})"
    vibe = f", vibe '{radio.vibe}' (alpha {radio.alpha:g})" if radio.vibe else ""
    console.print(
        f"Radio {radio.radio_id} on {radio.speaker_entity} for '{radio.profile}'{vibe}: {state}",
        highlight=False,
    )
    if radio.ended_detail:
        console.print(f"  {radio.ended_detail}", highlight=False, markup=False)
    table = Table(show_header=True, box=None, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("State")
    table.add_column("Artist")
    table.add_column("Title")
    table.add_column("Kind")
    table.add_column("Track", justify="right")
    shown = ([radio.now_playing] if radio.now_playing else []) + radio.upcoming + radio.skipped + radio.failed
    styles = {"playing": "bold green", "skipped": "yellow", "failed": "red"}
    for t in sorted(shown, key=lambda x: x.position):
        table.add_row(
            str(t.position), t.state, t.artist, t.title, t.kind, str(t.track_id), style=styles.get(t.state)
        )
    if shown:
        console.print(table)
    console.print(
        f"  {len(radio.played)} played, {len(radio.skipped)} skipped, {len(radio.upcoming)} upcoming"
        + (f"; avoiding {', '.join(radio.steer.avoided_artists)}" if radio.steer.avoided_artists else ""),
        highlight=False,
        markup=False,
    )
    if radio.playback.last_error:
        when = f" (next try {radio.playback.next_retry_at:%H:%M:%S})" if radio.playback.next_retry_at else ""
        console.print(f"  Home Assistant: {radio.playback.last_error}{when}", highlight=False, markup=False)
