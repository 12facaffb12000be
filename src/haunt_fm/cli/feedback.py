"""`haunt-fm feedback TRACK_ID up|down` (POST /api/feedback)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from haunt_fm.cli.backend import Call, execute, in_transaction, request
from haunt_fm.cli.common import JsonOption, ProfileOption, say

if TYPE_CHECKING:
    from haunt_fm.pipeline.feedback.schemas import FeedbackSaved


def register(app: typer.Typer) -> None:
    app.command("feedback")(feedback)


class Rating(StrEnum):
    up = "up"
    down = "down"


def feedback(
    ctx: typer.Context,
    track_id: Annotated[
        int,
        typer.Argument(
            metavar="TRACK_ID",
            min=1,
            help="The track's id (`recommend`, `recent`, `playlist` show it).",
            show_default=False,
        ),
    ],
    rating: Annotated[
        Rating, typer.Argument(metavar="up|down", help="Thumbs up or down.", show_default=False)
    ],
    profile: ProfileOption = None,
    vibe: Annotated[
        str,
        typer.Option(
            "--vibe",
            metavar="TEXT",
            help="Where the rating applies: 'general' everywhere, or only when this vibe is asked for.",
        ),
    ] = "general",
    as_json: JsonOption = False,
) -> None:
    """Rate a track for a profile: down hides it, up makes it a liked track that feeds the taste.

    Rating the same track again for the same profile and vibe replaces the earlier rating.
    """
    from haunt_fm.pipeline.feedback.schemas import FeedbackIn, FeedbackSaved

    body = request(
        FeedbackIn,
        options={"track_id": "TRACK_ID", "rating": "up|down", "profile": "--profile", "vibe": "--vibe"},
        track_id=track_id,
        rating=rating.value,
        profile=profile,
        vibe=vibe,
    )

    from haunt_fm.pipeline.feedback import service

    local = in_transaction(lambda s, _: service.give_feedback(s, feedback=body))
    execute(ctx, Call("POST", "/api/feedback", FeedbackSaved, local, body=body)).show(
        as_json=as_json, render=render_feedback
    )


def render_feedback(f: FeedbackSaved) -> None:
    context = "everywhere" if f.vibe == "general" else f"for the vibe '{f.vibe}'"
    replaced = " (replaces the earlier rating)" if f.replaced else ""
    track = f"{f.artist} - {f.title} (track {f.track_id})"
    say(f"Thumbs {f.rating} for {track}, profile '{f.profile}', {context}{replaced}.")
