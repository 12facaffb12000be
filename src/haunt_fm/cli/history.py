"""`haunt-fm backfill`: read an explicit window of Home Assistant's history for missed listens.

Local only: it has no API counterpart (a running `serve` reconciles the recent past by itself
every HAUNTFM_HA_RECONCILE_MINUTES).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Annotated

import typer

from haunt_fm.cli.common import (
    database,
    fail,
    local_only,
    print_json,
    say,
    settings,
    upgrade_schema,
    usage_error,
)

if TYPE_CHECKING:
    from haunt_fm.config import Settings
    from haunt_fm.pipeline.listens.reconcile import ReconcileRun


def register(app: typer.Typer) -> None:
    app.command("backfill")(backfill)


def parse_when(value: str) -> datetime:
    """A date (midnight UTC) or an ISO-8601 date-time (naive = UTC)."""
    value = value.strip()
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            when = datetime.combine(date.fromisoformat(value), time())
        except ValueError:
            raise ValueError(f"{value!r} is not a date (2026-11-20) or an ISO-8601 date-time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _when_option(value: str) -> datetime:
    try:
        return parse_when(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}.") from None


# No API counterpart, so no API document: the run as haunt-fm records it.
RunJsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of text.")]


def backfill(
    ctx: typer.Context,
    since: Annotated[
        datetime,
        typer.Option(
            "--since",
            parser=_when_option,
            metavar="WHEN",
            help="Start: a date (2026-11-20, UTC) or an ISO-8601 time.",
            show_default=False,
        ),
    ],
    until: Annotated[
        datetime | None,
        typer.Option("--until", parser=_when_option, metavar="WHEN", help="End (default: now), same forms."),
    ] = None,
    as_json: RunJsonOption = False,
) -> None:
    """Recover listens the webhook missed from Home Assistant's history between two times.

    Home Assistant keeps 10 days by default. Listens already stored are not stored again.
    """
    local_only(ctx)
    current = settings()
    if until is not None and until <= since:
        raise usage_error(ctx, "--until must be after --since.")
    if not current.ha_configured:
        raise fail("backfill reads Home Assistant's history: set HAUNTFM_HA_URL and HAUNTFM_HA_TOKEN.")
    with database(current, attach=True) as url:
        upgrade_schema(url)
        run = asyncio.run(_run(current, url, since=since, until=until))
    if as_json:
        print_json(run.as_json())
    else:
        say(
            f"read {run.start.isoformat()} .. {run.end.isoformat()} for {len(run.players)} player(s): "
            f"{run.states_read} recorded states, {run.listens_found} listen reports, "
            f"{run.recovered} listen(s) recovered"
        )
    if run.error:
        raise fail(run.error)


async def _run(current: Settings, url: str, *, since: datetime, until: datetime | None) -> ReconcileRun:
    """Reconcile [since, until) (until: now) and return what it read and recovered."""
    from haunt_fm.clients.homeassistant.client import HomeAssistantClient
    from haunt_fm.pipeline.listens import reconcile
    from haunt_fm.runtime import open_runtime

    async with open_runtime(current, database_url=url, pool_size=2, listen=False) as runtime:
        client = HomeAssistantClient(current.ha_url or "", current.ha_token, http=runtime.http)
        return await reconcile.reconcile(
            session_factory=runtime.sessions, settings=current, client=client, start=since, end=until
        )
