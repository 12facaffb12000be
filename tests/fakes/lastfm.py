"""A stand-in for Last.fm's `track.getSimilar`, answering in the real wire format.

    with FakeLastfm(api_key="test-key") as lastfm:
        client = LastfmClient("test-key", lastfm.api_url)

Any artist/title gets `similar_count` similar tracks drawn deterministically from a seeded
pool (so different seeds share candidates, like the real thing); titles containing
`unknown_marker` or marked with `mark_unknown` get an empty answer. Faults: `fail_next`,
`malformed_next`, `html_next`, `inject`; `max_per_second` enforces a rate limit server-side.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote_plus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import FakeService, Fault

ERROR_MESSAGES = {
    2: "Invalid service - This service does not exist",
    3: "Invalid Method - No method with that name in this package",
    6: "Track not found",
    8: "Operation failed - Most likely the backend service failed. Please try again.",
    10: "Invalid API key - You must be granted a valid key by last.fm",
    11: "Service Offline - This service is temporarily offline. Try again later.",
    16: "The service is temporarily unavailable, please try again.",
    26: "Suspended API key - Access for your account has been suspended, please contact Last.fm",
    29: "Rate Limit Exceeded - Your IP has made too many requests in a short period",
}
ERROR_STATUS = {6: 400, 10: 403, 26: 403, 29: 429, 8: 500, 11: 503, 16: 503}

IMAGE_HASH = "2a96cbd8b46e442fc41c2b86b821562f"
IMAGE_SIZES = (
    ("small", "34s"),
    ("medium", "64s"),
    ("large", "174s"),
    ("extralarge", "300x300"),
    ("mega", "300x300"),
    ("", "300x300"),
)

_ADJECTIVES = (
    "Velvet",
    "Hollow",
    "Neon",
    "Quiet",
    "Paper",
    "Golden",
    "Electric",
    "Silver",
    "Lunar",
    "Wild",
    "Broken",
    "Crystal",
    "Midnight",
    "Northern",
    "Static",
    "Amber",
    "Glass",
    "Slow",
)
_NOUNS = (
    "Owls",
    "Rivers",
    "Machines",
    "Harbours",
    "Ghosts",
    "Satellites",
    "Gardens",
    "Wolves",
    "Lanterns",
    "Tides",
    "Engines",
    "Foxes",
    "Choirs",
    "Signals",
    "Orchards",
    "Comets",
)
_WORDS = (
    "Light",
    "Summer",
    "Echo",
    "Fever",
    "Dream",
    "Heart",
    "Night",
    "Water",
    "Fire",
    "Stone",
    "Window",
    "Radio",
    "Shadow",
    "Season",
    "Distance",
    "Motion",
    "Skyline",
    "Gravity",
    "Honey",
    "Parade",
    "Mirror",
    "Weather",
    "Ocean",
    "Letter",
)

_ERROR_BODY_ORDERS = itertools.cycle((("error", "message", "links"), ("message", "error", "links")))


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def error_body(code: int, message: str | None = None) -> str:
    """A Last.fm error body; the key order alternates, as it does in the wild."""
    values = {"error": code, "message": message or ERROR_MESSAGES.get(code, "Error"), "links": []}
    return json.dumps({key: values[key] for key in next(_ERROR_BODY_ORDERS)})


def error_fault(code: int, *, http_status: int | None = None, message: str | None = None) -> Fault:
    """A JSON error answer, sent with the HTTP status Last.fm uses for that code unless told."""
    status = http_status if http_status is not None else ERROR_STATUS.get(code, 400)
    return Fault(status, error_body(code, message), content_type="application/json")


def track_url(artist: str, title: str) -> str:
    return f"https://www.last.fm/music/{quote_plus(artist)}/_/{quote_plus(title)}"


def track_json(
    name: str,
    artist: str,
    *,
    match: float = 1.0,
    playcount: int = 12345,
    duration: int = 215,
    mbid: str | None = None,
    artist_mbid: str | None = None,
) -> dict[str, Any]:
    """One similar-track object exactly as Last.fm writes it; a None mbid is left out."""
    track: dict[str, Any] = {"name": name, "playcount": playcount}
    if mbid is not None:
        track["mbid"] = mbid
    track |= {
        "match": match,
        "url": track_url(artist, name),
        "streamable": {"#text": "0", "fulltrack": "0"},
        "duration": duration,
        "artist": {"name": artist, "url": f"https://www.last.fm/music/{quote_plus(artist)}"},
        "image": [
            {"#text": f"https://lastfm.freetls.fastly.net/i/u/{px}/{IMAGE_HASH}.png", "size": size}
            for size, px in IMAGE_SIZES
        ],
    }
    if artist_mbid is not None:
        track["artist"] = {"name": artist, "mbid": artist_mbid, "url": track["artist"]["url"]}
    return track


class FakeLastfm(FakeService):
    """Fake `ws.audioscrobbler.com/2.0/`: see the module docstring for the knobs."""

    def __init__(
        self,
        *,
        api_key: str = "test-lastfm-key",
        seed: int = 1234,
        pool_size: int = 600,
        similar_count: int = 50,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.seed = seed
        self.pool = self._make_pool(seed, pool_size)
        self._pool_artists = {_key(artist): artist for artist, _ in self.pool}
        self.similar_count = similar_count
        self._rate_times: deque[float] = deque()
        self._rate_lock = threading.Lock()
        self._defaults()

    def _defaults(self) -> None:
        self.valid_keys: set[str] = {self.api_key}
        self.suspended_keys: set[str] = set()
        self.unknown_marker: str | None = "unknown"
        self.unknown: set[tuple[str, str]] = set()
        self.corrections: dict[str, str] = {}
        self.explicit: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # "empty_list": {"track": []}; "missing": no "track" key; "error6": error 6 at HTTP 200.
        self.empty_style = "empty_list"
        # Serve a one-track answer as a bare object instead of a one-element list.
        self.single_object = False
        # Serve match, playcount and duration as strings (as track.getInfo does).
        self.numbers_as_strings = False
        self.max_per_second: float | None = None

    def reset(self) -> None:
        """Forget requests and faults and restore every option."""
        super().reset()
        self._defaults()
        with self._rate_lock:
            self._rate_times.clear()

    @property
    def api_url(self) -> str:
        """What to pass as the client's base_url."""
        return f"{self.url}/2.0/"

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/2.0/", self._endpoint), Route("/2.0", self._endpoint)])

    # -- catalogue ----------------------------------------------------------------------
    @staticmethod
    def _make_pool(seed: int, size: int) -> list[tuple[str, str]]:
        rng = random.Random(seed)
        artists = [f"The {a} {n}" if rng.random() < 0.3 else f"{a} {n}" for a in _ADJECTIVES for n in _NOUNS]
        rng.shuffle(artists)
        pool: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        while len(pool) < size:
            artist = artists[len(pool) % len(artists)]
            title = " ".join(rng.sample(_WORDS, rng.choice((1, 2, 2, 3))))
            if (artist, title) not in seen:
                seen.add((artist, title))
                pool.append((artist, title))
        return pool

    def mark_unknown(self, artist: str, title: str) -> None:
        """Make `artist - title` a track Last.fm doesn't know (empty answer)."""
        self.unknown.add((_key(artist), _key(title)))

    def add_correction(self, misspelt: str, corrected: str) -> None:
        """Autocorrect `misspelt` to `corrected` in `@attr.artist`."""
        self.corrections[_key(misspelt)] = corrected

    def set_similar(
        self, artist: str, title: str, tracks: Sequence[dict[str, Any] | tuple[Any, ...]]
    ) -> None:
        """Fix the answer for one query; items are track dicts or (artist, title[, match])."""
        items: list[dict[str, Any]] = []
        for i, item in enumerate(tracks):
            if isinstance(item, dict):
                items.append(item)
            else:
                match = item[2] if len(item) > 2 else round(1.0 - i / max(1, len(tracks)), 6)
                items.append(track_json(item[1], item[0], match=match))
        self.explicit[(_key(artist), _key(title))] = items

    def similar_for(self, artist: str, title: str, limit: int) -> list[dict[str, Any]]:
        """The similar tracks this fake answers for a query (already in wire format)."""
        key = (_key(artist), _key(title))
        if key in self.explicit:
            return self.explicit[key][:limit]
        if key in self.unknown or (self.unknown_marker and self.unknown_marker in key[1]):
            return []
        digest = hashlib.sha256(f"{self.seed}\x1f{key[0]}\x1f{key[1]}".encode()).digest()
        rng = random.Random(digest)
        candidates = [t for t in self.pool if (_key(t[0]), _key(t[1])) != key]
        # Draw the full list and cut it, so a smaller limit answers a prefix of a larger one.
        count = min(self.similar_count, len(candidates))
        picked = rng.sample(candidates, count)[:limit]
        step = 0.9 / max(1, count)
        tracks = []
        for i, (sim_artist, sim_title) in enumerate(picked):
            match = round(max(0.01, 1.0 - i * step - rng.random() * step * 0.5), 6)
            ident = uuid.UUID(bytes=hashlib.md5(f"{sim_artist}\x1f{sim_title}".encode()).digest())
            artist_ident = uuid.UUID(bytes=hashlib.md5(sim_artist.encode()).digest())
            tracks.append(
                track_json(
                    sim_title,
                    sim_artist,
                    match=1 if i == 0 else match,  # the real API writes the best match as 1
                    playcount=rng.randint(500, 4_000_000),
                    duration=0 if i % 7 == 3 else rng.randint(120, 420),
                    mbid=str(ident) if i % 3 != 1 else None,  # a third lack an mbid
                    artist_mbid=str(artist_ident) if i % 4 != 2 else None,
                )
            )
        return tracks

    # -- HTTP ---------------------------------------------------------------------------
    def fail_next(
        self, code: int, *, times: int = 1, http_status: int | None = None, message: str | None = None
    ) -> None:
        """The next `times` requests answer Last.fm error `code` (default HTTP status per code)."""
        for _ in range(times):
            self.inject(error_fault(code, http_status=http_status, message=message))

    def malformed_next(self, *, times: int = 1, status: int = 200) -> None:
        """The next `times` requests answer a truncated JSON body."""
        self.inject(Fault(status, '{"similartracks":{"track":[{"name":"Kar', "application/json"), times=times)

    def html_next(self, *, times: int = 1, status: int = 502) -> None:
        """The next `times` requests answer a proxy's HTML error page."""
        page = f"<html><head><title>{status} Bad Gateway</title></head><body><h1>{status}</h1></body></html>"
        self.inject(Fault(status, page, "text/html"), times=times)

    def _over_rate(self) -> bool:
        if self.max_per_second is None:
            return False
        now = time.monotonic()
        with self._rate_lock:
            while self._rate_times and now - self._rate_times[0] >= 1.0:
                self._rate_times.popleft()
            if len(self._rate_times) >= self.max_per_second:
                return True
            self._rate_times.append(now)
            return False

    async def _endpoint(self, request: Request) -> Response:
        return await self._dispatch(request, self._answer)

    async def _answer(self, request: Request) -> Response:
        q = request.query_params
        if self._over_rate():
            return error_fault(29).response()
        key = q.get("api_key", "")
        if key in self.suspended_keys:
            return error_fault(26).response()
        if key not in self.valid_keys:
            return error_fault(10).response()
        if (q.get("method") or "").lower() != "track.getsimilar":
            return error_fault(3).response()
        artist, title = (q.get("artist") or "").strip(), (q.get("track") or "").strip()
        if not artist or not title:
            return error_fault(
                6, message="You must supply either a track & artist name or a track mbid."
            ).response()
        try:
            limit = max(1, int(q.get("limit") or 100))
        except ValueError:
            return error_fault(6, message="Invalid limit").response()

        corrected = artist
        if q.get("autocorrect") == "1":
            corrected = self.corrections.get(_key(artist), self._pool_artists.get(_key(artist), artist))
        tracks = self.similar_for(corrected, title, limit)
        if not tracks and self.empty_style == "error6":
            return error_fault(6, http_status=200).response()
        if self.numbers_as_strings:
            tracks = [
                {k: (str(v) if k in ("match", "playcount", "duration") else v) for k, v in t.items()}
                for t in tracks
            ]
        block: dict[str, Any] = {}
        if tracks or self.empty_style != "missing":
            block["track"] = tracks[0] if (self.single_object and len(tracks) == 1) else tracks
        block["@attr"] = {"artist": corrected}
        body = json.dumps({"similartracks": block})
        if q.get("format") != "json":
            body = '<?xml version="1.0" encoding="UTF-8"?>\n<lfm status="ok"><similartracks/></lfm>'
            return Response(body, media_type="text/xml")
        return Response(body, media_type="application/json")
