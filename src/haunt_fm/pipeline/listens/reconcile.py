"""Listens the webhook missed, recovered from Home Assistant's history.

While haunt-fm is down, restarting, or refusing Home Assistant's token, the automation's
reports are lost. Home Assistant's recorder keeps every player state (10 days by default), so
the players' recorded states are read back and every start and track change while playing
goes through the same rules as a webhook report (music only, resume, groups), with its real
start time and source `ha_history`. A report that belongs to a listen already stored folds
into it, so reading a window twice changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.clients._http import ClientError
from haunt_fm.clients.homeassistant.client import HomeAssistantClient
from haunt_fm.config import Settings
from haunt_fm.db.session import transaction
from haunt_fm.pipeline.common import is_blank
from haunt_fm.pipeline.listens import repository as repo
from haunt_fm.pipeline.listens import service
from haunt_fm.pipeline.listens.schemas import ListenIn

log = logging.getLogger(__name__)

STATE_KEY = "ha_reconcile"
# Each periodic window starts this far before the previous one ended: the recorder commits
# states a few seconds late, and a window read twice changes nothing.
OVERLAP = timedelta(minutes=5)
# How far back a periodic run reads at most (older: `haunt-fm backfill --since`).
MAX_LOOKBACK = timedelta(days=1)
# Windows are read a day at a time, so a long backfill never holds one huge answer.
CHUNK = timedelta(days=1)


@dataclass(slots=True)
class ReconcileRun:
    """What one reconciliation read and recovered."""

    kind: str  # "periodic" or "backfill"
    start: datetime
    end: datetime
    players: list[str] = field(default_factory=list)
    states_read: int = 0
    listens_found: int = 0
    recovered: int = 0
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["start"], doc["end"] = self.start.isoformat(), self.end.isoformat()
        return doc


def _track(state: dict[str, Any]) -> tuple[Any, str, str] | None:
    """What a playing state plays (content id, title, artist); None unless it is music."""
    if state.get("state") != "playing":
        return None
    attributes = state.get("attributes") or {}
    title, artist = attributes.get("media_title"), attributes.get("media_artist")
    if not isinstance(title, str) or not isinstance(artist, str) or is_blank(title) or is_blank(artist):
        return None  # videos, radio and announcements without an artist are not listens
    return attributes.get("media_content_id"), title.strip(), artist.strip()


def starts_from_history(states: Sequence[dict[str, Any]], *, window_start: datetime) -> list[ListenIn]:
    """The listen reports one player's recorded states make: each start and track change.

    The first state is the player's state at `window_start` (Home Assistant moves its times
    up to the window's start): it is context, not a change, unless it changed after that.
    """
    found: list[ListenIn] = []
    previous: dict[str, Any] | None = None
    for state in states:
        track = _track(state)
        try:
            when = datetime.fromisoformat(str(state.get("last_updated")))
        except ValueError:
            previous = state
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        started = track is not None and (
            previous is None or previous.get("state") != "playing" or _track(previous) != track
        )
        if started and (previous is not None or when > window_start):
            listen = _as_listen(state, when)
            if listen is not None:
                found.append(listen)
        previous = state
    return found


def _as_listen(state: dict[str, Any], when: datetime) -> ListenIn | None:
    attributes = state.get("attributes") or {}
    try:
        return ListenIn.model_validate(
            {
                "title": attributes.get("media_title"),
                "artist": attributes.get("media_artist"),
                "album": attributes.get("media_album_name"),
                "speaker_name": attributes.get("friendly_name"),
                "speaker_entity": state.get("entity_id"),
                "played_at": when,
                "media_content_id": attributes.get("media_content_id"),
                "duration_s": attributes.get("media_duration"),
                "group_members": attributes.get("group_members"),
            }
        )
    except ValidationError:
        # Only a title or artist the webhook would refuse too (over 1000 characters).
        log.warning("skipped a recorded state of %s the webhook would refuse", state.get("entity_id"))
        return None


async def players(session: AsyncSession, *, settings: Settings) -> list[str]:
    """The players to read: mapped speakers, players seen in listens and groups, HAUNTFM_HA_PLAYERS."""
    return sorted({*await repo.known_players(session), *settings.ha_player_list})


async def reconcile(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: HomeAssistantClient,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ReconcileRun:
    """Read the players' history and log the listens the webhook missed; records the run.

    Without `start` this is the periodic run: from where the last periodic run got to (less
    OVERLAP, at most MAX_LOOKBACK ago) until now. A Home Assistant failure is recorded in the
    run and in app_state, never raised; the next periodic run reads the window again.
    """
    now = datetime.now(UTC)
    kind = "periodic" if start is None else "backfill"
    async with session_factory() as session:
        state = await repo.get_state(session, key=STATE_KEY)
        watched = await players(session, settings=settings)
    if start is None:
        start = now - MAX_LOOKBACK
        if covered := state.get("covered_until"):
            start = max(start, datetime.fromisoformat(covered) - OVERLAP)
    end = min(end or now, now)
    run = ReconcileRun(kind=kind, start=start, end=end, players=watched)
    try:
        await _read_and_log(run, session_factory=session_factory, client=client)
    except ClientError as exc:
        run.error = exc.message
        log.warning("reconciliation from Home Assistant's history failed: %s", exc.message)
    update: dict[str, Any] = {"last_run_at": now.isoformat(), "last_run": run.as_json()}
    if run.error is not None:
        update |= {"last_error": run.error, "last_error_at": now.isoformat()}
    elif kind == "periodic":
        update["covered_until"] = end.isoformat()
    async with transaction(session_factory) as session:
        await repo.merge_state(session, key=STATE_KEY, value=update)
    return run


async def _read_and_log(
    run: ReconcileRun, *, session_factory: async_sessionmaker[AsyncSession], client: HomeAssistantClient
) -> None:
    if not run.players or run.start >= run.end:
        return
    found: list[ListenIn] = []
    chunk_start = run.start
    while chunk_start < run.end:
        chunk_end = min(chunk_start + CHUNK, run.end)
        for states in await client.history(run.players, start=chunk_start, end=chunk_end):
            run.states_read += len(states)
            found.extend(starts_from_history(states, window_start=chunk_start))
        chunk_start = chunk_end
    # In time order across players, as the webhook would have received them: a group's and
    # its members' reports then meet the same rules in either order.
    found.sort(key=lambda listen: listen.played_at or run.end)
    run.listens_found = len(found)
    async with session_factory() as session:
        conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        for listen in found:
            result = await service.log_listen(conn, listen=listen, source="ha_history")
            run.recovered += result.status == "logged"
