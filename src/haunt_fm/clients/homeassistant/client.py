"""Home Assistant REST API: read player states and ask Music Assistant to play tracks."""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from haunt_fm.clients._http import (
    ClientError,
    RetryPolicy,
    ServiceClient,
    SleepFn,
    describe_transport_error,
    secret_value,
)

logger = logging.getLogger(__name__)

ENQUEUE_MODES = frozenset({"play", "replace", "next", "replace_next", "add"})
_SERVICE_NAME = re.compile(r"^[a-z0-9_]+$")


class HomeAssistantError(ClientError):
    """Home Assistant refused or failed a request."""


class HomeAssistantAuthError(HomeAssistantError):
    """Home Assistant rejected the access token (HTTP 401) or its user may not do this (403)."""


class HomeAssistantServiceError(HomeAssistantError):
    """A service call raised inside Home Assistant (bare HTTP 500), e.g. an unresolvable track."""


class HomeAssistantUnavailable(HomeAssistantError):
    """Home Assistant could not be reached, timed out, or answered that it is not up (502-504)."""


class HomeAssistantClient(ServiceClient):
    """Async Home Assistant REST client; GETs retry transient failures, service calls never do."""

    def __init__(
        self,
        base_url: str,
        token: Any,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        sleep: SleepFn | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # For messages: never repeat credentials someone put in the URL (user:pass@host).
        self.display_url = _without_userinfo(self.base_url)
        token_value = secret_value(token).strip() if token is not None else ""
        if not self.base_url or not token_value:
            raise HomeAssistantAuthError(
                "Home Assistant is not configured; set HAUNTFM_HA_URL and HAUNTFM_HA_TOKEN", transient=False
            )
        super().__init__(
            http,
            retry=retry or RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=5.0),
            sleep=sleep,
            rng=rng,
            timeout=httpx.Timeout(15.0, connect=5.0),
        )
        self._headers = {"Authorization": f"Bearer {token_value}"}

    async def check_api(self) -> str:
        """Confirm the API answers and the token works; returns Home Assistant's message."""
        body = await self._get("/api/")
        if not isinstance(body, dict) or "message" not in body:
            raise HomeAssistantError(
                f"{self.display_url} answered /api/ with something that is not Home Assistant's API",
                transient=False,
            )
        return str(body["message"])

    async def get_state(self, entity_id: str) -> dict[str, Any] | None:
        """The entity's state object, or None when Home Assistant has no such entity."""
        # Quoted so an odd id can't reach another path; Home Assistant then answers 404.
        body = await self._get(f"/api/states/{quote(entity_id, safe='')}", missing_ok=True)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise HomeAssistantError(
                f"Home Assistant answered the state of {entity_id} with an unexpected shape", transient=False
            )
        return body

    async def list_states(self) -> list[dict[str, Any]]:
        """Every entity's state object (`GET /api/states`)."""
        body = await self._get("/api/states")
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise HomeAssistantError(
                "Home Assistant answered /api/states with an unexpected shape", transient=False
            )
        return body

    async def history(
        self,
        entity_ids: Sequence[str],
        *,
        start: datetime,
        end: datetime,
        significant_changes_only: bool = False,
    ) -> list[list[dict[str, Any]]]:
        """Recorded states of `entity_ids` from `start` to `end`: one list per entity, oldest first.

        Each list starts with the entity's state at `start` (its times moved up to `start`).
        Entities without a state in the window are left out. Track changes while a player
        stays `playing` are attribute changes, which Home Assistant leaves out unless
        `significant_changes_only` is False.
        """
        if not entity_ids:
            return []
        # Quoted by hand: a `+` in the offset must travel as %2B (in the query a bare `+` reads
        # as a space, and Home Assistant answers 400 "Invalid end_time"). Without end_time the
        # window would be one day from `start`.
        query = "&".join(
            [
                "filter_entity_id=" + quote(",".join(entity_ids), safe=",."),
                "end_time=" + quote(_iso(end), safe=""),
                *([] if significant_changes_only else ["significant_changes_only=0"]),
            ]
        )
        body = await self._get(f"/api/history/period/{quote(_iso(start), safe='')}?{query}")
        if not isinstance(body, list) or not all(
            isinstance(states, list) and all(isinstance(state, dict) for state in states) for states in body
        ):
            raise HomeAssistantError(
                "Home Assistant answered the history with an unexpected shape", transient=False
            )
        return body

    async def call_service(
        self, domain: str, service: str, data: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Call `domain.service` once (never retried: it may have acted); returns the changed states."""
        if not _SERVICE_NAME.match(domain) or not _SERVICE_NAME.match(service):
            raise HomeAssistantError(f"{domain}.{service} is not a valid service name", transient=False)
        what = f"{domain}.{service}"
        response = await self._send("POST", f"/api/services/{domain}/{service}", json_body=data or {})
        status = response.status_code
        if status == 400:
            raise HomeAssistantError(
                f"Home Assistant refused {what} as a bad request (unknown service or invalid data: "
                f"{_snippet(response)})",
                transient=False,
                status=status,
            )
        if status == 500:
            raise HomeAssistantServiceError(
                f"Home Assistant's {what} failed inside Home Assistant (HTTP 500); for Music Assistant "
                "this usually means the media could not be found",
                transient=False,
                status=status,
            )
        self._raise_for_status(response, what=what)
        body = _json(response, what=what)
        if not isinstance(body, list):
            raise HomeAssistantError(
                f"Home Assistant answered {what} with an unexpected shape", transient=False
            )
        return body

    async def play_media(
        self,
        entity_id: str,
        media_id: str | Sequence[str],
        *,
        artist: str | None = None,
        album: str | None = None,
        media_type: str = "track",
        enqueue: str | None = None,
        radio_mode: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Ask Music Assistant to play (or enqueue) media on a player via `music_assistant.play_media`."""
        if enqueue is not None and enqueue not in ENQUEUE_MODES:
            raise ValueError(f"enqueue must be one of {sorted(ENQUEUE_MODES)}, not {enqueue!r}")
        data: dict[str, Any] = {
            "entity_id": entity_id,
            "media_id": media_id if isinstance(media_id, str) else list(media_id),
            "media_type": media_type,
        }
        # Home Assistant's schema rejects None values, so only set what was given.
        optional = {"artist": artist, "album": album, "enqueue": enqueue, "radio_mode": radio_mode}
        data.update({key: value for key, value in optional.items() if value is not None})
        return await self.call_service("music_assistant", "play_media", data)

    async def media_stop(self, entity_id: str) -> list[dict[str, Any]]:
        """Stop what the player is playing (`media_player.media_stop`)."""
        return await self.call_service("media_player", "media_stop", {"entity_id": entity_id})

    async def _get(self, path: str, *, missing_ok: bool = False) -> Any:
        async def attempt() -> Any:
            response = await self._send("GET", path)
            if missing_ok and response.status_code == 404:
                return None
            self._raise_for_status(response, what=f"GET {path}")
            return _json(response, what=f"GET {path}")

        return await self._with_retries(attempt, what=f"Home Assistant GET {path}")

    async def _send(self, method: str, path: str, *, json_body: Any = None) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            return await self._http.request(method, url, json=json_body, headers=self._headers)
        except httpx.TimeoutException as exc:
            raise HomeAssistantUnavailable(
                f"Home Assistant at {self.display_url} did not answer in time "
                f"({describe_transport_error(exc)})",
                transient=True,
            ) from None
        except httpx.TransportError as exc:
            raise HomeAssistantUnavailable(
                f"Home Assistant at {self.display_url} could not be reached "
                f"({describe_transport_error(exc)})",
                transient=True,
            ) from None

    def _raise_for_status(self, response: httpx.Response, *, what: str) -> None:
        status = response.status_code
        if status < 300:
            return
        if status == 401:
            raise HomeAssistantAuthError(
                "Home Assistant rejected the token; check HAUNTFM_HA_TOKEN", transient=False, status=status
            )
        if status == 403:
            raise HomeAssistantAuthError(
                f"Home Assistant refused {what} (HTTP 403); the token's user may lack permission "
                "or this address may be banned",
                transient=False,
                status=status,
            )
        if status in (502, 503, 504):
            raise HomeAssistantUnavailable(
                f"Home Assistant at {self.display_url} is not available (HTTP {status})",
                transient=True,
                status=status,
            )
        raise HomeAssistantError(
            f"Home Assistant answered {what} with HTTP {status} ({_snippet(response)})",
            transient=status >= 500,
            status=status,
        )


def _iso(when: datetime) -> str:
    """ISO-8601 in UTC with microseconds, as Home Assistant writes its own times."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return (text[:120] + "…") if len(text) > 120 else (text or "empty body")


def _json(response: httpx.Response, *, what: str) -> Any:
    try:
        return json.loads(response.text)
    except ValueError:
        raise HomeAssistantError(
            f"Home Assistant answered {what} with a body that is not JSON",
            transient=False,
            status=response.status_code,
        ) from None


def _without_userinfo(url: str) -> str:
    # A regex rather than urlsplit, which raises on malformed URLs this must still print.
    return re.sub(r"//[^/?#]*@", "//", url, count=1)
