"""`haunt-fm radio start|stop|status` (POST, DELETE and GET /api/radio).

`start` queues the first batch itself; keeping the radio going afterwards is the job of the
radio loop inside a running `haunt-fm serve` on the same database (it reads the speaker's
listens and adds the next batches). With --url the radio starts in that service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from haunt_fm.cli.backend import Call, Local, execute, in_transaction, request
from haunt_fm.cli.common import (
    EXIT_USAGE,
    AlphaOption,
    JsonOption,
    VibeOption,
    console,
    fail,
    say,
)
from haunt_fm.cli.render import cell, table, when
from haunt_fm.cli.wording import cli_words

if TYPE_CHECKING:
    from haunt_fm.pipeline.radio.schemas import RadioList, RadioOut, RadioStarted, RadioStopped

radio_app = typer.Typer(help="Endless radio on a speaker: start, stop, status.", no_args_is_help=True)

OPTIONS = {
    "speaker_entity": "--speaker",
    "profile": "--profile",
    "vibe": "--vibe",
    "alpha": "--alpha",
    "known_pct": "--known-pct",
    "batch": "--batch",
}

SpeakerOption = Annotated[
    str,
    typer.Option(
        "--speaker",
        metavar="ENTITY",
        help="Music Assistant player, e.g. media_player.kitchen_2 (the `_2` one).",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(radio_app, name="radio")


@radio_app.command("start")
def start(
    ctx: typer.Context,
    speaker: SpeakerOption,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", "-p", metavar="NAME", help="Whose taste (default: the speaker's, else default)."
        ),
    ] = None,
    vibe: VibeOption = None,
    alpha: AlphaOption = 0.5,
    known_pct: Annotated[
        float,
        typer.Option(
            "--known-pct",
            min=0,
            max=100,
            metavar="0..100",
            help="Share of known favourites per batch, percent.",
        ),
    ] = 20,
    batch: Annotated[
        int, typer.Option("--batch", min=3, max=50, metavar="N", help="Tracks queued at a time, 3..50.")
    ] = 10,
    as_json: JsonOption = False,
) -> None:
    """Start a radio on a speaker; a running `serve` keeps it going.

    A radio already playing on the speaker ends. Exit status 2 when Home Assistant could not
    queue the first batch (the radio retries it).
    """
    from haunt_fm.pipeline.radio.schemas import RadioIn, RadioStarted

    body = request(
        RadioIn,
        options=OPTIONS,
        speaker_entity=speaker,
        profile=profile,
        vibe=vibe,
        alpha=alpha,
        known_pct=known_pct,
        batch=batch,
    )

    async def local(rt: Local) -> RadioStarted:
        from haunt_fm.pipeline.radio import service

        return await service.start_radio(
            rt.runtime.sessions, request=body, settings=rt.settings, vibe_encoder=rt.vibe_encoder()
        )

    call = Call(
        "POST", "/api/radio", RadioStarted, local, body=body, timeout=None, listen=True, options=OPTIONS
    )
    answer = execute(ctx, call)
    answer.show(as_json=as_json, render=render_started)
    first = answer.document.get("first_playback") or {}
    if first.get("status") == "failed":
        raise typer.Exit(code=EXIT_USAGE)


@radio_app.command("stop")
def stop(
    ctx: typer.Context,
    speaker: SpeakerOption,
    stop_playback: Annotated[bool, typer.Option("--stop-playback", help="Also stop the player.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Stop the radio on a speaker (what is already queued plays on unless --stop-playback)."""
    from urllib.parse import quote

    from haunt_fm.pipeline.radio.schemas import RadioStopped, clean_speaker

    try:
        entity = clean_speaker(speaker)
    except ValueError as exc:
        raise fail(f"{exc}.") from None

    async def local(rt: Local) -> RadioStopped:
        from haunt_fm.pipeline.radio import service

        return await service.stop_radio(
            rt.runtime.sessions, speaker=entity, stop_playback=stop_playback, settings=rt.settings
        )

    call = Call(
        "DELETE",
        f"/api/radio/{quote(entity, safe='')}",
        RadioStopped,
        local,
        params={"stop_playback": stop_playback},
        options={"stop_playback": "--stop-playback", "speaker_entity": "--speaker"},
    )
    execute(ctx, call).show(as_json=as_json, render=render_stopped)


@radio_app.command("status")
def status(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=500, metavar="N", help="Radios to show, 1..500.")
    ] = 20,
    as_json: JsonOption = False,
) -> None:
    """Radios playing now and ended in the last day, and the speakers one can start on."""
    from haunt_fm.pipeline.radio import service
    from haunt_fm.pipeline.radio.schemas import RadioList

    local = in_transaction(lambda s, _: service.list_radios(s, limit=limit))
    call = Call("GET", "/api/radio", RadioList, local, params={"limit": limit})
    execute(ctx, call).show(as_json=as_json, render=render_list)


# --- output -----------------------------------------------------------------------------------


def render_started(started: RadioStarted) -> None:
    render(started)
    first = started.first_playback
    colour = {"played": "green", "partial": "yellow"}.get(first.status, "red")
    console().print(
        f"Queued on {started.speaker_entity}: [{colour}]{first.status}[/{colour}], {first.queued} of "
        f"{len(started.queued)}",
        highlight=False,
    )
    if first.error:
        say(cli_words(first.error))
    for warning in started.warnings:
        say(f"note: {cli_words(warning)}")


def render_stopped(stopped: RadioStopped) -> None:
    say(
        f"Radio {stopped.radio_id} on {stopped.speaker_entity} stopped "
        f"({len(stopped.played)} played, {len(stopped.skipped)} skipped)."
    )
    if stopped.stop_playback.requested:
        if stopped.stop_playback.status == "stopped":
            say("The player is stopped.")
        else:
            say(f"The player could not be stopped: {stopped.stop_playback.error}")


def render_list(radios: RadioList) -> None:
    if not radios.radios:
        say("No radio has played in the last day. Start one: haunt-fm radio start --speaker ENTITY")
    for radio in radios.radios:
        render(radio)
    idle = [s for s in radios.speakers if s.radio_id is None]
    if idle:
        out = table("Speakers a radio can start on", "speaker", "name", "profile", "last listen")
        for s in idle:
            out.add_row(cell(s.speaker_entity), cell(s.speaker_name), cell(s.profile), when(s.last_listen_at))
        console().print(out)


def render(radio: RadioOut) -> None:
    """One radio: what it is, what plays now and next, what was skipped, why it ended."""
    vibe = f", vibe '{radio.vibe}' (alpha {radio.alpha:g})" if radio.vibe else ""
    header = cell(f"Radio {radio.radio_id} on {radio.speaker_entity} for '{radio.profile}'{vibe}: ")
    if radio.active:
        header.append("on", style="green")
    else:
        header.append("ended", style="red").append(f" ({radio.ended_reason})")
    console().print(header, highlight=False)
    if radio.ended_detail:
        say(f"  {radio.ended_detail}")
    shown = ([radio.now_playing] if radio.now_playing else []) + radio.upcoming + radio.skipped + radio.failed
    if shown:
        out = table("", "#", "state", "artist", "title", "kind", "track", right=("#", "track"))
        styles = {"playing": "bold green", "skipped": "yellow", "failed": "red"}
        for t in sorted(shown, key=lambda x: x.position):
            out.add_row(
                str(t.position),
                t.state,
                cell(t.artist),
                cell(t.title),
                t.kind,
                str(t.track_id),
                style=styles.get(t.state),
            )
        console().print(out)
    avoiding = f"; avoiding {', '.join(radio.steer.avoided_artists)}" if radio.steer.avoided_artists else ""
    played, skipped, upcoming = len(radio.played), len(radio.skipped), len(radio.upcoming)
    say(f"  {played} played, {skipped} skipped, {upcoming} upcoming{avoiding}")
    if radio.playback.last_error:
        retry = f" (next try {when(radio.playback.next_retry_at)})" if radio.playback.next_retry_at else ""
        say(f"  Home Assistant: {radio.playback.last_error}{retry}")
