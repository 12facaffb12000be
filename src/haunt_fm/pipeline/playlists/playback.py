"""Playing a playlist on a Music Assistant speaker through Home Assistant's REST API.

One `music_assistant.play_media` call per track, in order, so that one track Music
Assistant can't resolve (a bare HTTP 500) costs only that track. The first track that
plays replaces the speaker's queue (`enqueue: replace`); the rest are added after it. A
track is asked for by title with `artist` set (`media_type: track`), which DESIGN notes as
Music Assistant's most reliable text search. A bad token, an unreachable Home Assistant or
a refused service call stops the run: the same thing would happen to every later track.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from haunt_fm.clients._http import RetryPolicy
from haunt_fm.clients.homeassistant import (
    HomeAssistantClient,
    HomeAssistantError,
    HomeAssistantServiceError,
    HomeAssistantUnavailable,
)
from haunt_fm.config import Settings
from haunt_fm.errors import Invalid
from haunt_fm.pipeline.playlists.schemas import PlaybackFailure, PlaybackOut, PlaylistTrackOut

# Each call is bounded by the client's timeouts (15 s, 5 s to connect): Music Assistant's
# search can take a few seconds per track. A state read is tried twice at most.
HA_RETRY = RetryPolicy(max_attempts=2, base_delay=0.25, max_delay=1.0)
# The whole run is bounded too: past this, the remaining tracks are not queued.
PLAYBACK_BUDGET_S = 120.0

NOT_CONFIGURED = (
    "Playback needs Home Assistant: set HAUNTFM_HA_URL and HAUNTFM_HA_TOKEN (a long-lived access token), "
    "then generate the playlist again."
)
INTERRUPTED = "Playback was interrupted before it finished (the service stopped while queueing tracks)."


def open_client(settings: Settings) -> HomeAssistantClient | None:
    """A client for the configured Home Assistant, or None when it is not configured."""
    if not settings.ha_configured:
        return None
    assert settings.ha_url is not None
    return HomeAssistantClient(settings.ha_url, settings.ha_token, retry=HA_RETRY)


# Told each track's outcome as it happens; answers whether to go on.
OnResult = Callable[[PlaylistTrackOut, PlaybackFailure | None], Awaitable[bool]]


def not_requested(speaker_entity: str | None) -> PlaybackOut:
    return PlaybackOut(requested=False, speaker_entity=speaker_entity, status="not_requested", queued=0)


def failed(speaker_entity: str | None, error: str, warnings: Sequence[str] = ()) -> PlaybackOut:
    return PlaybackOut(
        requested=True,
        speaker_entity=speaker_entity,
        status="failed",
        queued=0,
        error=error,
        warnings=list(warnings),
    )


def explain(exc: HomeAssistantError) -> str:
    """A sentence a person can act on for a Home Assistant failure."""
    if isinstance(exc, HomeAssistantUnavailable):
        return f"{exc.message} Check HAUNTFM_HA_URL and that Home Assistant is running."
    return exc.message


def is_music_assistant(state: dict[str, Any]) -> bool:
    """Whether a Home Assistant state object is a Music Assistant player (what text search needs)."""
    attributes: dict[str, Any] = state.get("attributes") or {}
    return attributes.get("app_id") == "music_assistant" or "mass_player_type" in attributes


async def music_assistant_players(client: HomeAssistantClient) -> list[dict[str, Any]]:
    """The state objects of every Music Assistant player Home Assistant knows, by entity id."""
    states = await client.list_states()
    players = [
        s for s in states if str(s.get("entity_id", "")).startswith("media_player.") and is_music_assistant(s)
    ]
    return sorted(players, key=lambda s: str(s["entity_id"]))


async def check_speaker(client: HomeAssistantClient, entity_id: str) -> list[str]:
    """Warnings about the speaker; 422 when Home Assistant has no such entity.

    Asked first because a service call on a missing entity answers 200 and plays nothing.
    Home Assistant errors propagate for the caller to turn into a failed playback.
    """
    return (await speaker_state(client, entity_id))[1]


async def speaker_state(client: HomeAssistantClient, entity_id: str) -> tuple[dict[str, Any], list[str]]:
    """The speaker's state object and warnings about it; 422 when Home Assistant has no such entity."""
    state = await client.get_state(entity_id)
    if state is None:
        raise Invalid(
            f"Unknown speaker: Home Assistant has no entity {entity_id}. Use a Music Assistant player "
            "(the `_2` entity, e.g. media_player.study_speaker_2); Developer Tools > States lists them."
        )
    warnings: list[str] = []
    if not is_music_assistant(state):
        warnings.append(
            f"{entity_id} does not look like a Music Assistant player; text search may not resolve "
            "tracks on it. Use its Music Assistant entity (usually the one ending in `_2`)."
        )
    if state.get("state") == "unavailable":
        warnings.append(f"Home Assistant reports {entity_id} as unavailable; playback may fail.")
    return state, warnings


def _status(queued: int, total: int) -> str:
    if queued == total:
        return "played"
    return "partial" if queued else "failed"


async def play(
    client: HomeAssistantClient,
    *,
    entity_id: str,
    tracks: Sequence[PlaylistTrackOut],
    warnings: Sequence[str] = (),
    budget_s: float = PLAYBACK_BUDGET_S,
    replace_first: bool = True,
    on_result: OnResult | None = None,
) -> PlaybackOut:
    """Queue the tracks on the speaker in order; never raises for Home Assistant's failures.

    `replace_first=False` adds every track after what the speaker already has queued.
    `on_result(track, failure)` runs after each track Home Assistant answered for (failure
    None: queued); when it returns False, the remaining tracks are not sent.
    """
    queued = 0
    failures: list[PlaybackFailure] = []
    stop_reason: str | None = None
    deadline = time.monotonic() + budget_s
    for index, track in enumerate(tracks):
        if time.monotonic() > deadline:
            stop_reason = (
                f"Queueing took longer than {budget_s:g} s, so the remaining tracks were not queued."
            )
            break
        # Until one track has replaced the old queue, the next playable track must do it.
        enqueue = "add" if queued or not replace_first else "replace"
        failure: PlaybackFailure | None = None
        try:
            await client.play_media(
                entity_id, track.title, artist=track.artist, media_type="track", enqueue=enqueue
            )
        except HomeAssistantServiceError:
            failure = PlaybackFailure(
                position=track.position,
                track_id=track.track_id,
                title=track.title,
                artist=track.artist,
                reason=(
                    f"Music Assistant could not find '{track.artist} - {track.title}' "
                    "(Home Assistant answered HTTP 500)."
                ),
            )
            failures.append(failure)
        except HomeAssistantError as exc:
            stop_reason = explain(exc)
            if index:
                stop_reason += f" Stopped at track {track.position} of {len(tracks)}."
            break
        else:
            queued += 1
        if on_result is not None and not await on_result(track, failure):
            break
    status = _status(queued, len(tracks))
    error = _error(
        status=status, stop_reason=stop_reason, queued=queued, failures=failures, total=len(tracks)
    )
    return PlaybackOut(
        requested=True,
        speaker_entity=entity_id,
        status=status,  # type: ignore[arg-type]
        queued=queued,
        failed=failures,
        error=error,
        warnings=list(warnings),
    )


def _error(
    *, status: str, stop_reason: str | None, queued: int, failures: Sequence[PlaybackFailure], total: int
) -> str | None:
    if status == "played":
        return None
    parts: list[str] = []
    if stop_reason:
        parts.append(stop_reason)
    if failures:
        if not queued and not stop_reason:
            parts.append(
                f"Music Assistant could not find any of the {total} tracks; check that the speaker is a "
                "Music Assistant player (the `_2` entity) and that a music provider is set up."
            )
        else:
            parts.append(f"{len(failures)} of {total} tracks could not be found by Music Assistant.")
    if queued:
        parts.append(f"{queued} of {total} tracks are queued.")
    return " ".join(parts)
