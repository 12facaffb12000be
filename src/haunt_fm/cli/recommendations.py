"""`haunt-fm recommend` (GET /api/recommendations)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from haunt_fm.cli.backend import Call, Local, execute
from haunt_fm.cli.common import AlphaOption, JsonOption, ProfileOption, VibeOption, console, say
from haunt_fm.cli.render import cell, table

if TYPE_CHECKING:
    from haunt_fm.pipeline.recommendations.schemas import RecommendationsOut


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend)


def recommend(
    ctx: typer.Context,
    profile: ProfileOption = None,
    vibe: VibeOption = None,
    alpha: AlphaOption = 0.5,
    limit: Annotated[
        int,
        typer.Option("--limit", "-n", min=1, max=500, metavar="N", help="How many recommendations, 1..500."),
    ] = 20,
    as_json: JsonOption = False,
) -> None:
    """Tracks the profile hasn't heard, nearest its taste and/or a vibe.

    --alpha only matters with --vibe. A new vibe is embedded by a running `serve` or
    `haunt-fm worker` (this command loads no model).
    """
    from haunt_fm.pipeline.recommendations.schemas import RecommendationsOut

    async def local(rt: Local) -> RecommendationsOut:
        from haunt_fm.pipeline.recommendations import service

        encoder = rt.vibe_encoder()
        async with rt.transaction() as session:
            return await service.get_recommendations(
                session,
                profile=profile,
                limit=limit,
                vibe=vibe,
                alpha=alpha,
                settings=rt.settings,
                vibe_encoder=encoder,
            )

    params = {"profile": profile, "vibe": vibe, "alpha": alpha, "limit": limit}
    call = Call(
        "GET", "/api/recommendations", RecommendationsOut, local, params=params, listen=True, timeout=None
    )
    execute(ctx, call).show(as_json=as_json, render=render_recommendations)


def render_recommendations(doc: RecommendationsOut) -> None:
    asked = f"vibe '{doc.vibe}', alpha {doc.alpha:g}, " if doc.vibe else ""
    title = f"Recommendations for '{doc.profile}' ({asked}from {doc.basis})"
    if not doc.recommendations:
        say(f"{title}: none yet. Discovery and the embedding worker grow the pool (`haunt-fm status`).")
        return
    out = table(
        title,
        "#",
        "score",
        "artist",
        "title",
        "album",
        "genre",
        "track",
        "because",
        right=("#", "score", "track"),
    )
    for i, r in enumerate(doc.recommendations, start=1):
        because = "; ".join(f"{b.artist} - {b.title}" for b in r.because[:1])
        out.add_row(
            str(i),
            f"{r.score:.3f}",
            cell(r.artist),
            cell(r.title),
            cell(r.album),
            cell(r.genre),
            str(r.track_id),
            cell(because),
        )
    console().print(out)
