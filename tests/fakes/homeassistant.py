"""A stand-in for Home Assistant's REST API with Music Assistant players.

    with FakeHomeAssistant(token="t") as ha:
        ha.add_player("media_player.study_speaker_2", friendly_name="Study speaker")
        client = HomeAssistantClient(ha.url, "t")

Errors come back as Home Assistant writes them: plain-text `401: Unauthorized` and
`400: Bad Request`, a bare 500 when a service raises (see `unresolvable`), 200 `[]` for a
missing entity. Faults: `inject` (any route under /api), `fail_services_with_500`.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
                Route("/api/states/{entity_id}", self._state),
                Route("/api/services/{domain}/{service}", self._service, methods=["POST"]),
            ]
        )

    # -- state --------------------------------------------------------------------------
    def add_player(
        self, entity_id: str, *, friendly_name: str | None = None, state: str = "idle", volume: float = 0.3
    ) -> Player:
        """Add a Music Assistant player (`off`, `idle`, `paused` or `playing`)."""
        name = friendly_name or entity_id.split(".", 1)[-1].replace("_", " ").title()
        player = Player(entity_id, name, state=state, volume=volume)
        self.players[entity_id] = player
        return player

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
        player.last_changed = player.last_updated = _now()

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
            state = self.state_json(req.path_params["entity_id"])
            if state is None:
                return JSONResponse({"message": "Entity not found."}, status_code=404)
            return JSONResponse(state)

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
        now = _now()
        for player in players:
            player.last_changed = player.last_updated = now
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
