"""A stand-in for Last.fm, answering in the real wire formats, quirks included.

    with FakeLastfm(api_key="test-key") as lastfm:
        client = LastfmClient("test-key", lastfm.api_url)

Methods (names case-insensitive, as on Last.fm):
- `track.getSimilar`: any artist/title gets `similar_count` similar tracks drawn
  deterministically from a seeded pool (so different seeds share candidates, like the real
  thing); `set_similar` fixes one answer.
- `track.getTopTags`: `set_tags` fixes a track's tags; any other track gets deterministic,
  crowd-like tags (a genre family picked by artist, spelt several ways, plus noise such as
  `seen live` and years) unless `default_tags` is False.
- `tag.getTopTracks`: `set_tag_tracks` fixes a tag's chart; otherwise the chart is every
  track whose tags (set or default) carry the tag, heaviest first. Numbers are strings.
- `user.getRecentTracks`: `add_user` with scrobbles (newest first on the wire), an optional
  now-playing row (first on page 1) and `private` (error 17, HTTP 403); an unknown user
  answers HTTP 404 with error 6.

Titles containing `unknown_marker` or marked with `mark_unknown` are tracks Last.fm doesn't
know (empty similar tracks and tags; `empty_style` says how "empty" looks). `single_object`
serves any one-item list as a bare object. Faults: `fail_next`, `malformed_next`,
`html_next`, `inject`; `max_per_second` enforces a rate limit server-side. All of them apply
to every method, except `fail_method_next`, which aims at one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    17: "Login: User required to be logged in",
    8: "Operation failed - Most likely the backend service failed. Please try again.",
    10: "Invalid API key - You must be granted a valid key by last.fm",
    11: "Service Offline - This service is temporarily offline. Try again later.",
    16: "The service is temporarily unavailable, please try again.",
    26: "Suspended API key - Access for your account has been suspended, please contact Last.fm",
    29: "Rate Limit Exceeded - Your IP has made too many requests in a short period",
}
ERROR_STATUS = {6: 400, 10: 403, 17: 403, 26: 403, 29: 429, 8: 500, 11: 503, 16: 503}
# Error 17 (a user who hides their listening) comes without the "links" key.
_NO_LINKS = {17}
_MISSING_PARAMETER = Fault(
    400,
    json.dumps(
        {
            "error": 6,
            "message": "Invalid parameters - Your request is missing a required parameter",
            "links": [],
        }
    ),
    "application/json",
)
# user.getRecentTracks answers at most this many scrobbles a page (larger limits are capped).
MAX_RECENT_LIMIT = 200

IMAGE_HASH = "2a96cbd8b46e442fc41c2b86b821562f"
# user.getRecentTracks and tag.getTopTracks list four sizes; track.getSimilar six.
RECENT_IMAGE_SIZES = (("small", "34s"), ("medium", "64s"), ("large", "174s"), ("extralarge", "300x300"))
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
    values: dict[str, Any] = {"error": code, "message": message or ERROR_MESSAGES.get(code, "Error")}
    if code not in _NO_LINKS:
        values["links"] = []
    return json.dumps({key: values[key] for key in next(_ERROR_BODY_ORDERS) if key in values})


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


def _images(sizes: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    return [
        {"#text": f"https://lastfm.freetls.fastly.net/i/u/{px}/{IMAGE_HASH}.png", "size": size}
        for size, px in sizes
    ]


def _artist_url(artist: str) -> str:
    return f"https://www.last.fm/music/{quote_plus(artist)}"


def tag_url(name: str) -> str:
    return f"https://www.last.fm/tag/{quote_plus(name.casefold())}"


def tag_json(name: str, count: int) -> dict[str, Any]:
    """One `track.getTopTags` entry as Last.fm writes it (keys in Last.fm's order)."""
    return {"count": count, "name": name, "url": tag_url(name)}


def tag_track_json(
    name: str,
    artist: str,
    *,
    rank: int,
    duration: int = 215,
    mbid: str | None = "",
    artist_mbid: str | None = "",
) -> dict[str, Any]:
    """One `tag.getTopTracks` entry: numbers are strings, a None mbid is left out, "" is kept."""
    track: dict[str, Any] = {"name": name, "duration": str(duration)}
    if mbid is not None:
        track["mbid"] = mbid
    artist_block: dict[str, Any] = {"name": artist}
    if artist_mbid is not None:
        artist_block["mbid"] = artist_mbid
    artist_block["url"] = _artist_url(artist)
    track |= {
        "url": track_url(artist, name),
        "streamable": {"#text": "0", "fulltrack": "0"},
        "artist": artist_block,
        "image": _images(RECENT_IMAGE_SIZES),
        "@attr": {"rank": str(rank)},
    }
    return track


@dataclass(frozen=True, slots=True)
class FakeScrobble:
    """One scrobble in a fake user's history; `uts` is Unix seconds (UTC)."""

    uts: int
    artist: str
    title: str
    album: str = ""
    mbid: str = ""
    artist_mbid: str = ""
    album_mbid: str = ""


ScrobbleSpec = FakeScrobble | tuple[Any, ...] | dict[str, Any]


def _as_scrobble(spec: ScrobbleSpec) -> FakeScrobble:
    if isinstance(spec, FakeScrobble):
        return spec
    if isinstance(spec, dict):
        return FakeScrobble(**spec)
    return FakeScrobble(int(spec[0]), *spec[1:])


def scrobble_json(scrobble: FakeScrobble, *, now_playing: bool = False) -> dict[str, Any]:
    """One `user.getRecentTracks` row as Last.fm writes it; a now-playing row has no `date`."""
    row: dict[str, Any] = {
        "artist": {"mbid": scrobble.artist_mbid, "#text": scrobble.artist},
        "streamable": "0",
        "image": _images(RECENT_IMAGE_SIZES),
        "mbid": scrobble.mbid,
        "album": {"mbid": scrobble.album_mbid, "#text": scrobble.album},
        "name": scrobble.title,
    }
    if now_playing:
        row["@attr"] = {"nowplaying": "true"}
    row["url"] = track_url(scrobble.artist, scrobble.title)
    if not now_playing:
        played = datetime.fromtimestamp(scrobble.uts, tz=UTC)
        row["date"] = {"uts": str(scrobble.uts), "#text": played.strftime("%d %b %Y, %H:%M")}
    return row


@dataclass(slots=True)
class FakeUser:
    """A Last.fm user: scrobbles (kept newest first), what is playing now, and privacy."""

    name: str
    scrobbles: list[FakeScrobble] = field(default_factory=list)
    now_playing: FakeScrobble | None = None
    private: bool = False


# Crowd-written tags the default tag world draws from: a family of spellings per genre (as
# Last.fm users write them: mixed case, `lo-fi`/`lofi`/`Lo Fi`), and noise that says
# nothing about the sound.
TAG_FAMILIES: dict[str, tuple[str, ...]] = {
    "chill": ("chill", "Chillout", "chill out", "mellow", "relaxing"),
    "lo-fi": ("lo-fi", "lofi", "Lo Fi", "lo-fi hip hop", "chillhop"),
    "ambient": ("ambient", "Ambient", "atmospheric", "drone", "dreamy"),
    "heavy metal": ("heavy metal", "Heavy Metal", "metal", "hard rock", "thrash metal"),
    "jazz": ("jazz", "Jazz", "smooth jazz", "bebop", "saxophone"),
    "hip-hop": ("hip-hop", "Hip Hop", "hiphop", "rap", "boom bap"),
    "electronic": ("electronic", "Electronica", "dance", "house", "synthpop"),
    "indie": ("indie", "Indie Rock", "indie pop", "alternative", "dream pop"),
    "folk": ("folk", "Folk", "acoustic", "singer-songwriter", "Folk Rock"),
    "post-rock": ("post-rock", "Post Rock", "instrumental", "shoegaze", "melancholy"),
}
NOISE_TAGS: tuple[str, ...] = (
    "seen live",
    "favourites",
    "Favorite",
    "albums i own",
    "my favorite",
    "awesome",
    "love",
    "british",
    "female vocalists",
    "00s",
    "2010s",
    "1997",
)


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
        # Faults for one method only (the others, e.g. a background tag lookup, pass untouched).
        self._method_faults: dict[str, list[Fault]] = {}
        self.explicit: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # "empty_list": {"track": []}; "missing": no "track" key; "error6": error 6 at HTTP 200.
        self.empty_style = "empty_list"
        # Serve a one-track answer as a bare object instead of a one-element list.
        self.single_object = False
        # Serve match, playcount and duration (and tag counts) as strings (as track.getInfo does).
        self.numbers_as_strings = False
        self.max_per_second: float | None = None
        # track.getTopTags: tags set per (artist, title); others get default tags unless disabled.
        self.tags: dict[tuple[str, str], list[tuple[str, int]]] = {}
        self._tag_owner: dict[tuple[str, str], tuple[str, str]] = {}
        self.default_tags = True
        # tag.getTopTracks: charts set per tag; others are derived from the tags above.
        self.tag_charts: dict[str, list[dict[str, Any]]] = {}
        # user.getRecentTracks
        self.users: dict[str, FakeUser] = {}

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

    # -- tags -----------------------------------------------------------------------------
    def set_tags(self, artist: str, title: str, tags: Sequence[tuple[str, int] | str]) -> None:
        """Fix a track's `track.getTopTags` answer: (name, count) pairs, or names (100, 90, 80, ...)."""
        items: list[tuple[str, int]] = []
        for i, tag in enumerate(tags):
            items.append(tag if isinstance(tag, tuple) else (tag, max(0, 100 - 10 * i)))
        self.tags[(_key(artist), _key(title))] = items
        self._tag_owner[(_key(artist), _key(title))] = (artist, title)

    def _is_unknown(self, key: tuple[str, str]) -> bool:
        return key in self.unknown or bool(self.unknown_marker and self.unknown_marker in key[1])

    def default_tags_for(self, artist: str, title: str) -> list[tuple[str, int]]:
        """The crowd-like tags any unconfigured track gets: one genre family, picked by artist
        (so an artist's tracks agree), in several spellings, plus a little noise."""
        family_rng = random.Random(hashlib.sha256(f"{self.seed}\x1f{_key(artist)}".encode()).digest())
        family = TAG_FAMILIES[family_rng.choice(sorted(TAG_FAMILIES))]
        rng = random.Random(
            hashlib.sha256(f"{self.seed}\x1f{_key(artist)}\x1f{_key(title)}".encode()).digest()
        )
        picked = [family[0], *rng.sample(family[1:], rng.randint(2, 3))]
        tags = [(picked[0], 100)] + [(name, rng.randint(25, 95)) for name in picked[1:]]
        tags += [(name, rng.randint(1, 30)) for name in rng.sample(NOISE_TAGS, rng.randint(1, 3))]
        return sorted(tags, key=lambda t: t[1], reverse=True)

    def tags_for(self, artist: str, title: str) -> list[dict[str, Any]]:
        """The `track.getTopTags` entries this fake answers for a track (wire format)."""
        key = (_key(artist), _key(title))
        if key in self.tags:
            pairs = self.tags[key]
        elif self._is_unknown(key) or not self.default_tags:
            pairs = []
        else:
            pairs = self.default_tags_for(artist, title)
        return [tag_json(name, count) for name, count in pairs]

    def set_tag_tracks(self, tag: str, tracks: Sequence[dict[str, Any] | tuple[str, str]]) -> None:
        """Fix a tag's chart: track dicts (wire format) or (artist, title), best first; [] = unknown tag."""
        items: list[dict[str, Any]] = []
        for rank, item in enumerate(tracks, start=1):
            items.append(item if isinstance(item, dict) else self._chart_entry(item[0], item[1], rank))
        self.tag_charts[_key(tag)] = items

    def _chart_entry(self, artist: str, title: str, rank: int) -> dict[str, Any]:
        digest = hashlib.md5(f"{artist}\x1f{title}".encode()).digest()
        # Like the real chart: most entries carry an mbid, some an empty one, a few none at all.
        mbid: str | None = str(uuid.UUID(bytes=digest)) if digest[0] % 3 else ""
        if digest[1] % 7 == 0:
            mbid = None
        duration = 0 if digest[2] % 9 == 0 else 120 + digest[3]
        return tag_track_json(title, artist, rank=rank, duration=duration, mbid=mbid)

    def _tagged_tracks(self) -> Iterable[tuple[str, str, list[tuple[str, int]]]]:
        """Every track the fake can tag: those with set tags, then the pool's."""
        for key, pairs in self.tags.items():
            artist, title = self._tag_owner[key]
            yield artist, title, pairs
        if self.default_tags:
            for artist, title in self.pool:
                key = (_key(artist), _key(title))
                if key not in self.tags and not self._is_unknown(key):
                    yield artist, title, self.default_tags_for(artist, title)

    def tag_chart(self, tag: str) -> list[dict[str, Any]]:
        """A tag's whole chart as this fake answers it (wire format, rank 1 first)."""
        wanted = _key(tag)
        if wanted in self.tag_charts:
            return self.tag_charts[wanted]
        carriers: list[tuple[int, str, str]] = []
        for artist, title, pairs in self._tagged_tracks():
            # Last.fm tags are case-insensitive ("Lo-Fi" is "lo-fi") but spelling-sensitive.
            counts = [count for name, count in pairs if _key(name) == wanted]
            if counts:
                carriers.append((max(counts), artist, title))
        carriers.sort(key=lambda c: -c[0])  # stable: ties keep set-tags-then-pool order
        return [self._chart_entry(artist, title, rank) for rank, (_, artist, title) in enumerate(carriers, 1)]

    # -- users ------------------------------------------------------------------------------
    def add_user(
        self,
        name: str,
        scrobbles: Iterable[ScrobbleSpec] = (),
        *,
        now_playing: ScrobbleSpec | tuple[str, str] | None = None,
        private: bool = False,
    ) -> FakeUser:
        """A user with `scrobbles` ((uts, artist, title[, album]), dicts or FakeScrobble; any order)."""
        user = FakeUser(name=name, private=private)
        user.scrobbles = sorted((_as_scrobble(s) for s in scrobbles), key=lambda s: s.uts, reverse=True)
        self.users[_key(name)] = user
        self.set_now_playing(name, now_playing)
        return user

    def set_now_playing(self, name: str, track: ScrobbleSpec | tuple[str, str] | None) -> None:
        """What the user plays right now ((artist, title[, album]) or None): page 1's first row."""
        user = self.users[_key(name)]
        if track is None or isinstance(track, FakeScrobble | dict):
            user.now_playing = _as_scrobble(track) if track is not None else None
        else:
            user.now_playing = FakeScrobble(0, *track)

    def generate_scrobbles(
        self, count: int, *, newest_uts: int = 1_767_225_600, spacing: int = 200, seed: int = 0
    ) -> list[FakeScrobble]:
        """`count` scrobbles from the pool, newest first, `spacing` s apart; favourites repeat."""
        rng = random.Random(f"{self.seed}\x1f{seed}")
        favourites = rng.sample(self.pool, min(20, len(self.pool)))
        out = []
        for i in range(count):
            artist, title = rng.choice(favourites) if rng.random() < 0.4 else rng.choice(self.pool)
            out.append(FakeScrobble(newest_uts - i * spacing, artist, title, album=f"{title} (Album)"))
        return out

    def recent_for(
        self,
        name: str,
        *,
        limit: int = 50,
        page: int = 1,
        from_uts: int | None = None,
        to_uts: int | None = None,
    ) -> dict[str, Any]:
        """The `recenttracks` block this fake answers (wire format); the user must exist."""
        user = self.users[_key(name)]
        limit = max(1, min(MAX_RECENT_LIMIT, limit))
        chosen = [
            s
            for s in user.scrobbles
            if (from_uts is None or s.uts >= from_uts) and (to_uts is None or s.uts <= to_uts)
        ]
        total_pages = math.ceil(len(chosen) / limit)
        rows = [scrobble_json(s) for s in chosen[(page - 1) * limit : page * limit]]
        # Like the real thing, page 1 carries the now-playing row on top of a full page.
        if page == 1 and user.now_playing is not None:
            rows.insert(0, scrobble_json(user.now_playing, now_playing=True))
        attr = {
            "user": user.name,
            "totalPages": str(total_pages),
            "page": str(page),
            "perPage": str(limit),
            "total": str(len(chosen)),
        }
        return {"track": self._maybe_single(rows), "@attr": attr}

    def _maybe_single(self, items: list[dict[str, Any]]) -> list[dict[str, Any]] | dict[str, Any]:
        return items[0] if (self.single_object and len(items) == 1) else items

    # -- HTTP ---------------------------------------------------------------------------
    def fail_next(
        self, code: int, *, times: int = 1, http_status: int | None = None, message: str | None = None
    ) -> None:
        """The next `times` requests answer Last.fm error `code` (default HTTP status per code)."""
        for _ in range(times):
            self.inject(error_fault(code, http_status=http_status, message=message))

    def fail_method_next(self, method: str, code: int, *, times: int = 1) -> None:
        """The next `times` requests of `method` (e.g. user.getRecentTracks) answer error `code`."""
        with self._lock:
            self._method_faults.setdefault(method.lower(), []).extend(error_fault(code) for _ in range(times))

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
        method = (q.get("method") or "").lower()
        with self._lock:
            pending = self._method_faults.get(method)
            fault = pending.pop(0) if pending else None
        if fault is not None:
            return fault.response()
        handler = {
            "track.getsimilar": self._similar,
            "track.gettoptags": self._top_tags,
            "tag.gettoptracks": self._tag_top_tracks,
            "user.getrecenttracks": self._recent_tracks,
        }.get(method)
        if handler is None:
            return error_fault(3).response()
        body = handler(q)
        if isinstance(body, Response):
            return body
        if q.get("format") != "json":
            xml = '<?xml version="1.0" encoding="UTF-8"?>\n<lfm status="ok"></lfm>'
            return Response(xml, media_type="text/xml")
        return Response(json.dumps(body), media_type="application/json")

    def _corrected(self, q: Any, artist: str) -> str:
        if q.get("autocorrect") != "1":
            return artist
        return self.corrections.get(_key(artist), self._pool_artists.get(_key(artist), artist))

    @staticmethod
    def _int_param(q: Any, name: str, default: int | None) -> int | None:
        value = q.get(name)
        if value in (None, ""):
            return default
        return int(value)  # ValueError: the caller answers error 6

    @staticmethod
    def _artist_and_track(q: Any) -> tuple[str, str] | Response:
        artist, title = (q.get("artist") or "").strip(), (q.get("track") or "").strip()
        if not artist or not title:
            return error_fault(
                6, message="You must supply either a track & artist name or a track mbid."
            ).response()
        return artist, title

    def _track_answer(
        self, items: list[dict[str, Any]], *, outer: str, inner: str, attr: dict[str, str]
    ) -> dict[str, Any] | Response:
        """A per-track answer (similar tracks, tags); an empty one looks as `empty_style` says."""
        if not items and self.empty_style == "error6":
            return error_fault(6, http_status=200).response()
        block: dict[str, Any] = {}
        if items or self.empty_style != "missing":
            block[inner] = self._maybe_single(items)
        block["@attr"] = attr
        return {outer: block}

    def _similar(self, q: Any) -> dict[str, Any] | Response:
        asked = self._artist_and_track(q)
        if isinstance(asked, Response):
            return asked
        artist, title = asked
        try:
            limit = max(1, self._int_param(q, "limit", 100) or 100)
        except ValueError:
            return error_fault(6, message="Invalid limit").response()
        corrected = self._corrected(q, artist)
        tracks = self.similar_for(corrected, title, limit)
        if self.numbers_as_strings:
            tracks = [
                {k: (str(v) if k in ("match", "playcount", "duration") else v) for k, v in t.items()}
                for t in tracks
            ]
        return self._track_answer(tracks, outer="similartracks", inner="track", attr={"artist": corrected})

    def _top_tags(self, q: Any) -> dict[str, Any] | Response:
        asked = self._artist_and_track(q)
        if isinstance(asked, Response):
            return asked
        artist, title = asked
        corrected = self._corrected(q, artist)
        tags = self.tags_for(corrected, title)
        if self.numbers_as_strings:
            tags = [{**t, "count": str(t["count"])} for t in tags]
        return self._track_answer(
            tags, outer="toptags", inner="tag", attr={"artist": corrected, "track": title}
        )

    def _tag_top_tracks(self, q: Any) -> dict[str, Any] | Response:
        tag = (q.get("tag") or "").strip()
        if not tag:
            return _MISSING_PARAMETER.response()
        try:
            limit = max(1, self._int_param(q, "limit", 50) or 50)
            page = max(1, self._int_param(q, "page", 1) or 1)
        except ValueError:
            return error_fault(6, message="Invalid parameters").response()
        chart = self.tag_chart(tag)
        rows = chart[(page - 1) * limit : page * limit]
        attr = {
            "tag": tag,
            "page": str(page),
            "perPage": str(limit),
            "totalPages": str(math.ceil(len(chart) / limit)),
            "total": str(len(chart)),
        }
        return {"tracks": {"track": self._maybe_single(rows), "@attr": attr}}

    def _recent_tracks(self, q: Any) -> dict[str, Any] | Response:
        name = (q.get("user") or "").strip()
        if not name:
            return _MISSING_PARAMETER.response()
        user = self.users.get(_key(name))
        if user is None:
            return error_fault(6, http_status=404, message="User not found").response()
        if user.private:
            return error_fault(17).response()
        try:
            limit = self._int_param(q, "limit", 50) or 50
            page = max(1, self._int_param(q, "page", 1) or 1)
            from_uts = self._int_param(q, "from", None)
            to_uts = self._int_param(q, "to", None)
        except ValueError:
            return error_fault(6, message="Invalid parameters").response()
        return {
            "recenttracks": self.recent_for(name, limit=limit, page=page, from_uts=from_uts, to_uts=to_uts)
        }
