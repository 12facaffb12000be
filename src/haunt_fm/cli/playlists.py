"""`haunt-fm playlist` (POST /api/playlists/generate): generate (and play) a playlist, shown as a table.

In-process the CLI holds no model: a vibe is grounded in the library's tags, and when the
model's text tower works its text goes through the text_embeddings queue, like an API process
without a model, for a running `haunt-fm worker` (or `serve`) to embed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from haunt_fm.cli.backend import Call, Local, execute, request
from haunt_fm.cli.common import (
    EXIT_USAGE,
    AlphaOption,
    JsonOption,
    ProfileOption,
    VibeOption,
    console,
    usage_error,
)
from haunt_fm.cli.render import cell, table
from haunt_fm.cli.wording import cli_words

if TYPE_CHECKING:
    from rich.console import Console

    from haunt_fm.pipeline.playlists.schemas import PlaylistOut

OPTIONS = {
    "total_tracks": "--tracks",
    "known_pct": "--known-pct",
    "speaker_entity": "--speaker",
    "auto_play": "--play",
    "profile": "--profile",
    "vibe": "--vibe",
    "alpha": "--alpha",
}


def register(app: typer.Typer) -> None:
    app.command("playlist")(playlist)


def playlist(
    ctx: typer.Context,
    tracks: Annotated[
        int,
        typer.Option("--tracks", "-n", min=1, max=200, metavar="N", help="Tracks in the playlist, 1..200."),
    ] = 20,
    known_pct: Annotated[
        float,
        typer.Option(
            "--known-pct", min=0, max=100, metavar="0..100", help="Share of known favourites, percent."
        ),
    ] = 30,
    speaker: Annotated[
        str | None,
        typer.Option(
            "--speaker", metavar="ENTITY", help="Music Assistant player, e.g. media_player.kitchen."
        ),
    ] = None,
    play: Annotated[bool, typer.Option("--play", help="Play it on --speaker now.")] = False,
    profile: ProfileOption = None,
    vibe: VibeOption = None,
    alpha: AlphaOption = 0.5,
    as_json: JsonOption = False,
) -> None:
    """Generate a playlist of known favourites and discoveries (and play it with --play).

    The playlist is saved either way. Exit status 2 when playback was asked for and failed.
    """
    from haunt_fm.pipeline.playlists.schemas import PlaylistIn, PlaylistOut

    if play and not speaker:
        raise usage_error(ctx, "--play needs --speaker: name the Music Assistant player to play on.")
    body = request(
        PlaylistIn,
        options=OPTIONS,
        total_tracks=tracks,
        known_pct=known_pct,
        speaker_entity=speaker,
        auto_play=play,
        profile=profile,
        vibe=vibe,
        alpha=alpha,
    )

    async def local(rt: Local) -> PlaylistOut:
        from haunt_fm.pipeline.playlists.service import generate_playlist

        return await generate_playlist(
            rt.runtime.sessions, request=body, settings=rt.settings, vibe_encoder=rt.vibe_encoder()
        )

    call = Call(
        "POST",
        "/api/playlists/generate",
        PlaylistOut,
        local,
        body=body,
        timeout=None,
        listen=True,
        options=OPTIONS,
    )
    answer = execute(ctx, call)
    answer.show(as_json=as_json, render=lambda doc: render(doc, console()))
    playback = answer.document.get("playback") or {}
    if playback.get("requested") and playback.get("status") == "failed":
        raise typer.Exit(code=EXIT_USAGE)


def render(playlist: PlaylistOut, console: Console) -> None:
    """The playlist as a table, then what happened on the speaker."""
    title = (
        f"Playlist {playlist.playlist_id} for '{playlist.profile}': "
        f"{playlist.known_count} known, {playlist.new_count} new"
        + (f", vibe '{playlist.vibe}' (alpha {playlist.alpha:g})" if playlist.vibe else "")
    )
    out = table(
        title, "#", "Kind", "Artist", "Title", "Album", "Score", "Track", right=("#", "Score", "Track")
    )
    failed = {f.position for f in playlist.playback.failed}
    for t in playlist.tracks:
        style = "red" if t.position in failed else ("cyan" if t.kind == "known" else None)
        out.add_row(
            str(t.position),
            t.kind,
            cell(t.artist),
            cell(t.title),
            cell(t.album),
            "" if t.score is None else f"{t.score:.3f}",
            str(t.track_id),
            style=style,
        )
    console.print(out)
    pb = playlist.playback
    if pb.requested:
        colour = {"played": "green", "partial": "yellow"}.get(pb.status, "red")
        console.print(
            f"Playback on {pb.speaker_entity}: [{colour}]{pb.status}[/{colour}], {pb.queued} queued",
            highlight=False,
        )
        for failure in pb.failed:
            console.print(f"  track {failure.position}: {failure.reason}", highlight=False, markup=False)
        if pb.error:
            console.print(cli_words(pb.error), highlight=False, markup=False)
    for warning in playlist.warnings:
        console.print(f"note: {cli_words(warning)}", highlight=False, markup=False)
