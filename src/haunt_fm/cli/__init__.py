"""Command line: `haunt-fm [--url URL] [--verbose] <command>`.

Each command group lives in its own module with a `register(app)`; the commands with an API
counterpart describe their operation once (`backend.Call`) and run it in-process or, with
`--url` / HAUNTFM_URL, against a remote haunt-fm over HTTP.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from haunt_fm import __version__
from haunt_fm.cli import (
    db,
    discovery,
    feedback,
    history,
    imports,
    listens,
    mcp,
    playlists,
    profiles,
    radio,
    recommendations,
    server,
    status,
    taste,
)
from haunt_fm.cli.common import EXIT_USAGE, CliState, fail, settings, setup_logging
from haunt_fm.config import SettingsError


class _CheckedSettings(TyperGroup):
    """Every command: an unusable setting stops it with one line and exit status 2, no traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=EXIT_USAGE) from None


app = typer.Typer(
    cls=_CheckedSettings,
    help=(
        "haunt-fm: a personal music recommendation engine for a household.\n\n"
        "Commands with an API counterpart run against the local database, or with --url "
        "(HAUNTFM_URL) against a running haunt-fm over HTTP, with HAUNTFM_API_TOKEN. "
        "Exit status: 0 done, 1 error, 2 bad usage (and `playlist` when playback failed)."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Typer's rich help labels every flag `<bool>` as if it took a value; click's plain help
    # shows flags as flags.
    rich_markup_mode=None,
    # Tracebacks with local variables would print database URLs and API keys.
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"haunt-fm {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="Talk to the haunt-fm at URL (e.g. http://nas.local:8321) instead of the local database; "
            "default: HAUNTFM_URL.",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what happens (INFO), migrations included.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    # Before any command: a retired setting stops it with the sentence naming its replacement
    # (an invalid one raises SettingsError here, which _CheckedSettings turns into one line).
    for message in settings().retired():
        raise fail(message)
    ctx.obj = CliState(verbose=verbose, url=url)
    setup_logging(verbose=verbose)


# Daily use first, then history, discovery, the service and its database.
# Other command groups register here.
for module in (
    status,
    listens,
    recommendations,
    playlists,
    radio,
    feedback,
    profiles,
    taste,
    imports,
    history,
    discovery,
    server,
    mcp,
    db,
):
    module.register(app)

if __name__ == "__main__":
    app()
