"""A stand-in for Home Assistant's REST API with Music Assistant players.

    with FakeHomeAssistant(token="t") as ha:
        ha.add_player("media_player.study_speaker_2", friendly_name="Study speaker")
        client = HomeAssistantClient(ha.url, "t")

Errors come back as Home Assistant writes them: plain-text `401: Unauthorized` and
`400: Bad Request`, a bare 500 when a service raises (see `unresolvable`), 200 `[]` for a
missing entity. Faults: `inject` (any route under /api), `fail_services_with_500`.

States can also be set as a test (or Music Assistant) would on a real core, with
`POST /api/states/<entity_id>` (`set_state` here), and every change is recorded for
`GET /api/history/period/<start>` as Home Assistant's recorder answers it (core 2024.3,
checked against a real one): one list per entity, oldest first; the first item is the
entity's state at the window's start with its times moved up to the start; times with
microseconds and `+00:00`; only state changes unless `significant_changes_only=0` (a track
change while playing is an attribute change); a window of one day without `end_time`; a bare
`+` in `end_time` reads as a space and answers 400 `Invalid end_time`; no `filter_entity_id`:
400 `filter_entity_id is missing`. `clock` sets the time the fake stamps changes with.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeService, Fault

ENQUEUE = {"play", "replace", "next", "replace_next", "add"}
MEDIA_TYPES = {"artist", "album", "audiobook", "folder", "playlist", "podcast", "track", "radio", "genre"}
PLAY_MEDIA_KEYS = {"entity_id", "media_id", "media_type", "artist", "album", "enqueue", "radio_mode"}
MEDIA_PLAYER_SERVICES = {
    "turn_on",
    "turn_off",
    "media_play",
    "media_pause",
    "media_stop",
    "volume_set",
    "media_next_track",
    "clear_playlist",
}
# music_assistant players support nearly everything; this is the bitmask HA reports for them.
SUPPORTED_FEATURES = 4127295


def _text(status: int, body: str) -> Response:
    return Response(body, status_code=status, media_type="text/plain")


def _content_id(artist: str | None, title: str) -> str:
    key = f"{artist}|{title}".encode()
    return f"library://track/{zlib.crc32(key) % 100000}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


_ENTITY_ID = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")


def _parse_datetime(value: str) -> datetime | None:
    """Home Assistant's dt_util.parse_datetime, as UTC; None when it is not one."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _recorded(state: dict[str, Any]) -> dict[str, Any]:
    """A state as the recorder gives it back: no last_reported, a context without user."""
    return {
        "entity_id": state["entity_id"],
        "state": state["state"],
        "attributes": copy.deepcopy(state["attributes"]),
        "last_changed": state["last_changed"],
        "last_updated": state["last_updated"],
        "context": {"id": state["context"]["id"], "parent_id": None, "user_id": None},
    }


@dataclass(slots=True)
class ServiceCall:
    """One POST /api/services/<domain>/<service> as received; `status` is what it answered."""

    domain: str
    service: str
    data: Any
    at: float
    status: int = 0


@dataclass(slots=True)
class Player:
    entity_id: str
    friendly_name: str
    state: str = "idle"
    volume: float = 0.3
    now_playing: dict[str, Any] | None = None
    queue: list[dict[str, Any]] = field(default_factory=list)
    last_changed: str = field(default_factory=_now)
    last_updated: str = field(default_factory=_now)


class FakeHomeAssistant(FakeService):
    """Fake Home Assistant: `/api/`, `/api/states[/<id>]`, `/api/services/<domain>/<service>`."""

    def __init__(self, *, token: str = "test-ha-token") -> None:
        super().__init__()
        self.token = token
        self._context_ids = itertools.count(1)
        self._defaults()

    def _defaults(self) -> None:
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        # entity_id -> recorded states (as GET /api/states answers them), oldest first.
        self.recorded: dict[str, list[dict[str, Any]]] = {}
        self.players: dict[str, Player] = {}
        self.other_states: dict[str, dict[str, Any]] = {}
        self.service_calls: list[ServiceCall] = []
        # Media ids (case-insensitive, "Artist - Title" or a bare title) Music Assistant can't find.
        self.unresolvable: set[str] = set()
        # HA's aiohttp answers a raising service with this text; set "" for an empty body.
        self.error_500_body = "500 Internal Server Error\n\nServer got itself in trouble"

    def reset(self) -> None:
        """Forget players, calls, requests, faults and options."""
        super().reset()
        self._defaults()

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/", self._api_root),
                Route("/api/states", self._states),
                Route("/api/states/{entity_id}", self._state, methods=["GET", "POST"]),
                Route("/api/services/{domain}/{service}", self._service, methods=["POST"]),
                Route("/api/history/period", self._history),
                Route("/api/history/period/{start:path}", self._history),
            ]
        )

    # -- state --------------------------------------------------------------------------
    def add_player(
        self, entity_id: str, *, friendly_name: str | None = None, state: str = "idle", volume: float = 0.3
    ) -> Player:
        """Add a Music Assistant player (`off`, `idle`, `paused` or `playing`)."""
        name = friendly_name or entity_id.split(".", 1)[-1].replace("_", " ").title()
        now = self._stamp()
        player = Player(entity_id, name, state=state, volume=volume, last_changed=now, last_updated=now)
        self.players[entity_id] = player
        self._remember_state(entity_id)
        return player

    def set_state(self, entity_id: str, state: str, attributes: dict[str, Any] | None = None) -> int:
        """What POST /api/states/<entity_id> does: 201 when the entity is new, else 200.

        `last_changed` moves when the state changes, `last_updated` when the state or an
        attribute does; setting the same state and attributes again records nothing.
        """
        attributes = {k: v for k, v in (attributes or {}).items() if v is not None}
        old = self.state_json(entity_id)
        now = self._stamp()
        if old is not None and old["state"] == state and old["attributes"] == attributes:
            return 200
        changed = old is None or old["state"] != state
        self.other_states[entity_id] = {
            "entity_id": entity_id,
            "state": state,
            "attributes": attributes,
            "last_changed": now if changed else old["last_changed"],  # type: ignore[index]
            "last_updated": now,
            "context": {"id": uuid.uuid4().hex.upper()[:26], "parent_id": None, "user_id": None},
        }
        self._remember_state(entity_id)
        return 201 if old is None else 200

    def _stamp(self) -> str:
        return self.clock().astimezone(UTC).isoformat()

    def _remember_state(self, entity_id: str) -> None:
        state = self.state_json(entity_id)
        if state is not None:
            self.recorded.setdefault(entity_id, []).append(copy.deepcopy(state))

    def set_playing(
        self,
        entity_id: str,
        *,
        title: str,
        artist: str | None,
        album: str | None = None,
        content_id: str | None = None,
        duration: int | None = 215,
    ) -> None:
        """Make a player play something (artist None: a radio stream or video)."""
        player = self.players[entity_id]
        player.state = "playing"
        player.now_playing = {
            "media_title": title,
            "media_artist": artist,
            "media_album_name": album,
            "media_content_id": content_id or _content_id(artist, title),
            "media_duration": duration,
        }
        player.last_changed = player.last_updated = self._stamp()
        self._remember_state(entity_id)

    def remove_entity(self, entity_id: str) -> None:
        self.players.pop(entity_id, None)
        self.other_states.pop(entity_id, None)

    def queue(self, entity_id: str) -> list[dict[str, Any]]:
        """What the player would play after the current item."""
        return list(self.players[entity_id].queue)

    def fail_services_with_500(self, *, times: int = 1, body: str | None = None) -> None:
        """The next `times` requests answer a bare 500."""
        self.inject(Fault(500, self.error_500_body if body is None else body, "text/plain"), times=times)

    def state_json(self, entity_id: str) -> dict[str, Any] | None:
        """The state object as GET /api/states/<id> returns it."""
        if entity_id in self.other_states:
            return self.other_states[entity_id]
        player = self.players.get(entity_id)
        if player is None:
            return None
        attributes: dict[str, Any] = {
            "group_members": [],
            "volume_level": player.volume,
            "is_volume_muted": False,
        }
        if player.state != "off" and player.now_playing:
            position = 12
            attributes |= {
                "media_content_id": player.now_playing["media_content_id"],
                "media_content_type": "music",
                "media_duration": player.now_playing["media_duration"],
                "media_position": position,
                "media_position_updated_at": player.last_updated,
                "media_title": player.now_playing["media_title"],
                "media_artist": player.now_playing["media_artist"],
                "media_album_name": player.now_playing["media_album_name"],
            }
        if player.state == "off":
            # Off players drop volume and every media_* attribute.
            attributes = {"group_members": []}
        attributes |= {
            "app_id": "music_assistant",
            "mass_player_type": "player",
            "device_class": "speaker",
            "friendly_name": player.friendly_name,
            "supported_features": SUPPORTED_FEATURES,
        }
        return {
            "entity_id": entity_id,
            "state": player.state,
            # Home Assistant leaves None attributes out altogether.
            "attributes": {k: v for k, v in attributes.items() if v is not None},
            "last_changed": player.last_changed,
            "last_reported": player.last_updated,
            "last_updated": player.last_updated,
            "context": {"id": uuid.uuid4().hex.upper()[:26], "parent_id": None, "user_id": None},
        }

    # -- HTTP ---------------------------------------------------------------------------
    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    async def _guarded(self, request: Request, handler: Any) -> Response:
        async def answer(req: Request) -> Response:
            if not self._authorised(req):
                return _text(401, "401: Unauthorized")
            result: Response = await handler(req)
            return result

        return await self._dispatch(request, answer)

    async def _api_root(self, request: Request) -> Response:
        async def handler(_req: Request) -> Response:
            return JSONResponse({"message": "API running."})

        return await self._guarded(request, handler)

    async def _states(self, request: Request) -> Response:
        async def handler(_req: Request) -> Response:
            ids = [*self.players, *self.other_states]
            return JSONResponse([self.state_json(entity_id) for entity_id in ids])

        return await self._guarded(request, handler)

    async def _state(self, request: Request) -> Response:
        async def handler(req: Request) -> Response:
            if req.method == "POST":
                return await self._post_state(req)
            state = self.state_json(req.path_params["entity_id"])
            if state is None:
                return JSONResponse({"message": "Entity not found."}, status_code=404)
            return JSONResponse(state)

        return await self._guarded(request, handler)

    async def _post_state(self, req: Request) -> Response:
        entity_id = req.path_params["entity_id"]
        try:
            data = json.loads(await req.body())
        except ValueError:
            return JSONResponse({"message": "Invalid JSON specified."}, status_code=400)
        if not _ENTITY_ID.match(entity_id):
            return JSONResponse({"message": "Invalid entity ID specified."}, status_code=400)
        if not isinstance(data, dict) or not isinstance(data.get("state"), str):
            return JSONResponse({"message": "No state specified."}, status_code=400)
        attributes = data.get("attributes") or {}
        if not isinstance(attributes, dict):
            return JSONResponse({"message": "Invalid JSON specified."}, status_code=400)
        status = self.set_state(entity_id, data["state"], attributes)
        return JSONResponse(self.state_json(entity_id), status_code=status)

    def history(
        self,
        entity_ids: list[str],
        start: datetime,
        end: datetime,
        *,
        significant_changes_only: bool = True,
        include_start_time_state: bool = True,
    ) -> list[list[dict[str, Any]]]:
        """What the recorder answers for the window (see the module docstring)."""
        answer = []
        for entity_id in entity_ids:
            states = self.recorded.get(entity_id, [])
            initial = None
            window = []
            for state in states:
                updated = datetime.fromisoformat(state["last_updated"])
                if updated <= start:
                    initial = state
                elif updated < end:
                    if significant_changes_only and state["last_changed"] != state["last_updated"]:
                        continue
                    window.append(state)
            items = []
            if include_start_time_state and initial is not None:
                moved = start.isoformat()
                items.append({**_recorded(initial), "last_changed": moved, "last_updated": moved})
            items.extend(_recorded(state) for state in window)
            if items:
                answer.append(items)
        return answer

    async def _history(self, request: Request) -> Response:
        async def handler(req: Request) -> Response:
            now = self.clock()
            raw_start = req.path_params.get("start")
            start = now - timedelta(days=1)
            if raw_start is not None:
                parsed = _parse_datetime(raw_start)
                if parsed is None:
                    return JSONResponse({"message": "Invalid datetime"}, status_code=400)
                start = parsed
            query = req.query_params  # like aiohttp, a bare `+` decodes as a space
            ids = [i for i in (query.get("filter_entity_id") or "").strip().lower().split(",") if i]
            if not ids:
                return JSONResponse({"message": "filter_entity_id is missing"}, status_code=400)
            if any(self.state_json(i) is None and not _ENTITY_ID.match(i) for i in ids):
                return JSONResponse({"message": "Invalid filter_entity_id"}, status_code=400)
            if start > now:
                return JSONResponse([])
            end = start + timedelta(days=1)
            if query.get("end_time"):
                parsed_end = _parse_datetime(query["end_time"])
                if parsed_end is None:
                    return JSONResponse({"message": "Invalid end_time"}, status_code=400)
                end = parsed_end
            return JSONResponse(
                self.history(
                    ids,
                    start,
                    end,
                    significant_changes_only=query.get("significant_changes_only", "1") != "0",
                    include_start_time_state="skip_initial_state" not in query,
                )
            )

        return await self._guarded(request, handler)

    async def _service(self, request: Request) -> Response:
        async def handler(req: Request) -> Response:
            domain, service = req.path_params["domain"], req.path_params["service"]
            call = ServiceCall(domain, service, None, time.monotonic())
            self.service_calls.append(call)
            response = self._run_service(domain, service, await req.body(), call)
            call.status = response.status_code
            return response

        return await self._guarded(request, handler)

    def _run_service(self, domain: str, service: str, raw: bytes, call: ServiceCall) -> Response:
        bad = _text(400, "400: Bad Request")
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return bad
        call.data = data
        if not isinstance(data, dict):
            return bad
        if domain == "music_assistant" and service == "play_media":
            return self._play_media(data)
        if domain == "media_player" and service in MEDIA_PLAYER_SERVICES:
            return self._media_player(service, data)
        return bad

    def _targets(self, data: dict[str, Any]) -> list[Player]:
        ids = data.get("entity_id")
        ids = [ids] if isinstance(ids, str) else ids or []
        return [self.players[i] for i in ids if i in self.players]

    def _changed(self, players: list[Player]) -> Response:
        now = self._stamp()
        for player in players:
            player.last_changed = player.last_updated = now
            self._remember_state(player.entity_id)
        return JSONResponse([self.state_json(p.entity_id) for p in players])

    def _play_media(self, data: dict[str, Any]) -> Response:
        bad = _text(400, "400: Bad Request")
        entity_ids, media = data.get("entity_id"), data.get("media_id")
        if set(data) - PLAY_MEDIA_KEYS or not entity_ids or not media:
            return bad
        if not isinstance(entity_ids, str | list) or not isinstance(media, str | list):
            return bad
        items = [media] if isinstance(media, str) else media
        if not all(isinstance(item, str) and item.strip() for item in items):
            return bad
        if data.get("media_type", "track") not in MEDIA_TYPES or data.get("enqueue", "play") not in ENQUEUE:
            return bad
        if not isinstance(data.get("radio_mode", False), bool):
            return bad
        for key in ("artist", "album"):
            if key in data and not isinstance(data[key], str):
                return bad
        players = self._targets(data)
        if not players:
            return JSONResponse([])  # a missing entity: nothing happens
        artist = data.get("artist")
        resolved = []
        for item in items:
            if item.casefold() in self.unresolvable or (
                artist and f"{artist} - {item}".casefold() in self.unresolvable
            ):
                return _text(500, self.error_500_body)  # Music Assistant raised: "media not found"
            if artist:
                resolved.append({"media_title": item, "media_artist": artist})
            elif " - " in item:
                a, t = item.split(" - ", 1)
                resolved.append({"media_title": t, "media_artist": a})
            else:
                resolved.append({"media_title": item, "media_artist": None})
        for entry in resolved:
            entry |= {
                "media_album_name": data.get("album"),
                "media_content_id": _content_id(entry["media_artist"], entry["media_title"]),
                "media_duration": 215,
            }
        enqueue = data.get("enqueue", "play")
        changed = []
        for player in players:
            if enqueue in ("play", "replace") or player.now_playing is None or player.state == "off":
                if enqueue == "replace":
                    player.queue.clear()
                player.now_playing = resolved[0]
                player.queue[0:0] = resolved[1:]
                player.state = "playing"
                changed.append(player)
            elif enqueue in ("next", "replace_next"):
                if enqueue == "replace_next":
                    player.queue.clear()
                player.queue[0:0] = resolved
            else:
                player.queue.extend(resolved)
        return self._changed(changed)

    def _media_player(self, service: str, data: dict[str, Any]) -> Response:
        players = self._targets(data)
        for player in players:
            if service == "turn_off":
                player.state, player.now_playing = "off", None
            elif service == "turn_on" and player.state == "off":
                player.state = "idle"
            elif service == "media_play" and player.now_playing:
                player.state = "playing"
            elif service == "media_pause" and player.state == "playing":
                player.state = "paused"
            elif service == "media_stop":
                player.state = "idle"
            elif service == "volume_set":
                level = data.get("volume_level")
                if not isinstance(level, int | float) or not 0 <= level <= 1:
                    return _text(400, "400: Bad Request")
                player.volume = float(level)
            elif service == "media_next_track" and player.queue:
                player.now_playing = player.queue.pop(0)
            elif service == "clear_playlist":
                player.queue.clear()
        return self._changed(players)
