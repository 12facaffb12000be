"""`haunt-fm profiles list|show|create|delete|speakers` (/api/profiles)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from haunt_fm.cli.backend import Call, Local, execute, in_transaction, request
from haunt_fm.cli.common import JsonOption, console, say, usage_error
from haunt_fm.cli.render import cell, table, taste_lines, when

if TYPE_CHECKING:
    from haunt_fm.pipeline.profiles.schemas import ProfileDeleted, ProfileList, ProfileOut, SpeakersOut

profiles_app = typer.Typer(
    help="Profiles (one per listener) and the speakers that attribute listens to them.", no_args_is_help=True
)

NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="Profile name.", show_default=False)]


def register(app: typer.Typer) -> None:
    app.add_typer(profiles_app, name="profiles")


@profiles_app.command("list")
def list_profiles(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every profile with its listens, tracks, feedback, speakers and taste."""
    from haunt_fm.pipeline.profiles.schemas import ProfileList

    async def local(rt: Local) -> ProfileList:
        from haunt_fm.pipeline.profiles import service

        async with rt.transaction() as session:
            return ProfileList(profiles=await service.list_profiles(session))

    call = Call("GET", "/api/profiles", ProfileList, local)
    execute(ctx, call).show(as_json=as_json, render=render_profiles)


def render_profiles(doc: ProfileList) -> None:
    out = table(
        "Profiles",
        "name",
        "display name",
        "listens",
        "tracks",
        "feedback",
        "speakers",
        "taste built",
        "tastes",
        right=("listens", "tracks", "feedback"),
    )
    for p in doc.profiles:
        out.add_row(
            cell(p.name),
            cell(p.display_name),
            str(p.listens),
            str(p.tracks),
            str(p.feedback),
            cell(", ".join(p.speakers)),
            when(p.taste_built_at),
            cell("; ".join(f"{t.label} {t.weight:.0%}" for t in p.tastes)),
        )
    console().print(out)


@profiles_app.command("show")
def show_profile(ctx: typer.Context, name: NameArgument, as_json: JsonOption = False) -> None:
    """One profile with its stats."""
    from haunt_fm.pipeline.profiles import service
    from haunt_fm.pipeline.profiles.schemas import ProfileOut

    local = in_transaction(lambda s, _: service.get_profile(s, name=name))
    call = Call("GET", f"/api/profiles/{_path(name)}", ProfileOut, local)
    execute(ctx, call).show(as_json=as_json, render=render_profile)


@profiles_app.command("create")
def create_profile(
    ctx: typer.Context,
    name: NameArgument,
    display_name: Annotated[
        str | None, typer.Option("--display-name", metavar="TEXT", help="How the dashboard shows it.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a profile (lowercase letters, digits, '_' and '-')."""
    from haunt_fm.pipeline.profiles.schemas import ProfileCreate, ProfileOut

    body = request(
        ProfileCreate,
        options={"name": "NAME", "display_name": "--display-name"},
        name=name,
        display_name=display_name,
    )

    from haunt_fm.pipeline.profiles import service

    local = in_transaction(
        lambda s, _: service.create_profile(s, name=body.name, display_name=body.display_name)
    )

    call = Call("POST", "/api/profiles", ProfileOut, local, body=body)
    execute(ctx, call).show(as_json=as_json, render=lambda p: say(f"Created profile '{p.name}'."))


@profiles_app.command("delete")
def delete_profile(ctx: typer.Context, name: NameArgument, as_json: JsonOption = False) -> None:
    """Delete a profile; its listens, feedback and playlists move to 'default'."""
    from haunt_fm.pipeline.profiles import service
    from haunt_fm.pipeline.profiles.schemas import ProfileDeleted

    local = in_transaction(lambda s, _: service.delete_profile(s, name=name))
    call = Call("DELETE", f"/api/profiles/{_path(name)}", ProfileDeleted, local)
    execute(ctx, call).show(as_json=as_json, render=render_deleted)


def render_deleted(d: ProfileDeleted) -> None:
    say(
        f"Deleted profile '{d.profile}'; {d.listens_moved} listen(s) and {d.feedback_moved} rating(s) "
        "moved to 'default'."
    )


@profiles_app.command("speakers")
def speakers(
    ctx: typer.Context,
    name: NameArgument,
    speaker: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SPEAKER",
            help="Speaker names or entity ids; given, they replace the profile's speakers.",
            show_default=False,
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Map no speaker to the profile.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a profile's speakers, or set them (a speaker belongs to one profile at most).

    Listens from a mapped speaker (its name or entity id, any case) go to the profile.
    """
    from haunt_fm.pipeline.profiles.schemas import SpeakersIn, SpeakersOut

    if clear and speaker:
        raise usage_error(
            ctx, "--clear and SPEAKER don't go together: --clear maps no speaker to the profile."
        )
    body = (
        request(SpeakersIn, options={"speakers": "SPEAKER"}, speakers=[] if clear else speaker)
        if clear or speaker
        else None
    )

    async def local(rt: Local) -> SpeakersOut:
        from haunt_fm.pipeline.profiles import service

        async with rt.transaction() as session:
            if body is None:
                return await service.get_speakers(session, name=name)
            return await service.set_speakers(session, name=name, speakers=body.speakers)

    method = "GET" if body is None else "PUT"
    call = Call(method, f"/api/profiles/{_path(name)}/speakers", SpeakersOut, local, body=body)
    execute(ctx, call).show(as_json=as_json, render=render_speakers)


def render_speakers(doc: SpeakersOut) -> None:
    if doc.speakers:
        say(f"Speakers of '{doc.profile}': {', '.join(doc.speakers)}")
    else:
        say(f"No speaker is mapped to '{doc.profile}'.")


def render_profile(p: ProfileOut) -> None:
    say(f"Profile '{p.name}'" + (f" ({p.display_name})" if p.display_name else ""))
    say(f"  listens {p.listens}, tracks {p.tracks}, feedback {p.feedback}")
    say(f"  speakers: {', '.join(p.speakers) if p.speakers else 'none'}")
    stale = " (stale: rebuilt on next use)" if p.taste_stale else ""
    used = f" from {p.taste_tracks_used} track(s)" if p.taste_tracks_used else ""
    say(f"  taste built {when(p.taste_built_at)}{used}{stale}")
    for line in taste_lines(p.tastes):
        say(f"  {line}")
    say(f"  created {when(p.created_at)}")


def _path(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
