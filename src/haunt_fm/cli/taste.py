"""`haunt-fm taste rebuild` (POST /api/admin/build-taste-profile)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from haunt_fm.cli.backend import Call, execute, in_transaction
from haunt_fm.cli.common import JsonOption, ProfileOption, say
from haunt_fm.cli.render import taste_lines, when

if TYPE_CHECKING:
    from haunt_fm.pipeline.taste.schemas import TasteBuilt

taste_app = typer.Typer(
    help="Taste profiles (what a profile's listens and likes sound like).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(taste_app, name="taste")


@taste_app.command("rebuild")
def rebuild(ctx: typer.Context, profile: ProfileOption = None, as_json: JsonOption = False) -> None:
    """Rebuild a profile's taste now (recommendations and playlists also rebuild a stale one)."""
    from haunt_fm.pipeline.taste import service
    from haunt_fm.pipeline.taste.schemas import TasteBuilt

    local = in_transaction(lambda s, rt: service.build_taste_profile(s, name=profile, settings=rt.settings))
    call = Call("POST", "/api/admin/build-taste-profile", TasteBuilt, local, params={"profile": profile})
    execute(ctx, call).show(as_json=as_json, render=render_taste)


def render_taste(t: TasteBuilt) -> None:
    say(f"Taste of '{t.profile}' rebuilt from {t.tracks_used} track(s) at {when(t.built_at)}.")
    for line in taste_lines(t.tastes):
        say(f"  {line}")
