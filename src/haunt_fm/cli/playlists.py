"""`haunt-fm playlist`: the same generation (and playback) as POST /api/playlists/generate, as a table.

The CLI holds no model: a vibe is grounded in the library's tags, and when the model's text
tower works its text goes through the text_embeddings queue, like an API process without a
model, for a running `haunt-fm worker` (or `serve`) to embed.
"""

from __future__ import annotations

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from haunt_fm.config import Settings
from haunt_fm.errors import Invalid
from haunt_fm.pipeline.playlists.schemas import PlaylistIn, PlaylistOut
from haunt_fm.pipeline.playlists.service import generate_playlist
from haunt_fm.pipeline.recommendations.vibe import make_vibe_encoder
from haunt_fm.runtime import open_runtime


def build_request(
    *,
    tracks: int,
    known_pct: float,
    speaker: str | None,
    play: bool,
    profile: str | None,
    vibe: str | None,
    alpha: float,
) -> PlaylistIn:
    """The request the options describe; Invalid with the reasons when they don't validate."""
    try:
        return PlaylistIn(
            total_tracks=tracks,
            known_pct=known_pct,
            speaker_entity=speaker,
            auto_play=play,
            profile=profile,
            vibe=vibe,
            alpha=alpha,
        )
    except ValidationError as exc:
        raise invalid_options(exc) from None


def invalid_options(exc: ValidationError) -> Invalid:
    """Command-line options that don't validate, as one sentence."""
    reasons = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
    )
    return Invalid(f"Invalid options: {reasons}.")


async def run(settings: Settings, database_url: str, *, request: PlaylistIn) -> PlaylistOut:
    """Generate (and play) a playlist against the database at `database_url`."""
    async with open_runtime(settings, database_url=database_url, pool_size=3) as runtime:
        encoder = make_vibe_encoder(settings, runtime.sessions, wakeups=runtime.wakeups)
        return await generate_playlist(
            runtime.sessions, request=request, settings=settings, vibe_encoder=encoder
        )


def render(playlist: PlaylistOut, console: Console) -> None:
    """The playlist as a table, then what happened on the speaker."""
    title = (
        f"Playlist {playlist.playlist_id} for '{playlist.profile}': "
        f"{playlist.known_count} known, {playlist.new_count} new"
        + (f", vibe '{playlist.vibe}' (alpha {playlist.alpha:g})" if playlist.vibe else "")
    )
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Kind")
    table.add_column("Artist")
    table.add_column("Title")
    table.add_column("Album")
    table.add_column("Score", justify="right")
    table.add_column("Track", justify="right")
    failed = {f.position for f in playlist.playback.failed}
    for t in playlist.tracks:
        style = "red" if t.position in failed else ("cyan" if t.kind == "known" else None)
        table.add_row(
            str(t.position),
            t.kind,
            t.artist,
            t.title,
            t.album or "",
            "" if t.score is None else f"{t.score:.3f}",
            str(t.track_id),
            style=style,
        )
    console.print(table)
    pb = playlist.playback
    if pb.requested:
        colour = {"played": "green", "partial": "yellow"}.get(pb.status, "red")
        console.print(
            f"Playback on {pb.speaker_entity}: [{colour}]{pb.status}[/{colour}], {pb.queued} queued",
            highlight=False,
        )
        for failure in pb.failed:
            console.print(f"  track {failure.position}: {failure.reason}", highlight=False)
        if pb.error:
            console.print(pb.error, highlight=False, markup=False)
    for warning in playlist.warnings:
        console.print(f"note: {warning}", highlight=False, markup=False)
