"""`haunt-fm recent` (GET /api/history/recent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from haunt_fm.cli.backend import Call, Local, execute
from haunt_fm.cli.common import JsonOption, ProfileOption, console, say
from haunt_fm.cli.render import cell, table, when

if TYPE_CHECKING:
    from haunt_fm.pipeline.listens.schemas import RecentListens


def register(app: typer.Typer) -> None:
    app.command("recent")(recent)


def recent(
    ctx: typer.Context,
    profile: ProfileOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=500, metavar="N", help="How many listens, 1..500.")
    ] = 20,
    as_json: JsonOption = False,
) -> None:
    """Recent listens, newest first (every profile's unless --profile).

    `source` says where a listen came from (webhook, ha_history, lastfm, listenbrainz); a skipped
    listen (cut short by the next on its speaker) feeds no taste.
    """
    from haunt_fm.pipeline.listens.schemas import RecentListens

    async def local(rt: Local) -> RecentListens:
        from haunt_fm.pipeline.listens import service

        async with rt.transaction() as session:
            return RecentListens(events=await service.recent(session, profile=profile, limit=limit))

    params = {"profile": profile, "limit": limit}
    call = Call("GET", "/api/history/recent", RecentListens, local, params=params)
    execute(ctx, call).show(as_json=as_json, render=lambda doc: render_recent(doc, profile=profile))


def render_recent(doc: RecentListens, *, profile: str | None) -> None:
    if not doc.events:
        say(f"No listens yet{f' for {profile!r}' if profile else ''}.")
        return
    title = f"Recent listens{f' of {profile!r}' if profile else ''}"
    out = table(
        title,
        "played",
        "profile",
        "artist",
        "title",
        "speaker",
        "source",
        "skipped",
        "track",
        right=("track",),
    )
    for e in doc.events:
        out.add_row(
            when(e.played_at),
            cell(e.profile),
            cell(e.artist),
            cell(e.title),
            cell(e.speaker_name or e.speaker_entity),
            e.source,
            "skipped" if e.skipped else "",
            str(e.track_id),
            # A skipped listen feeds no taste: dimmed.
            style="dim" if e.skipped else None,
        )
    console().print(out)
