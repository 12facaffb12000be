"""A stand-in for the iTunes Search API and its preview CDN, in the real wire format.

    with FakeItunes() as itunes:
        track_id = itunes.add_track("Daft Punk", "Get Lucky")
        client = ItunesClient(itunes.url)

Search answers are `text/javascript; charset=utf-8` with three leading newlines. Each added
track brings decoys (karaoke, "Made Famous By", tribute, a plain cover by someone else)
listed before it. Faults: `throttle` (403 with an empty body, or 429), `inject`,
`inject_preview`; `max_per_minute` throttles server-side; `throttle_all` throttles every search.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import FakeService, Fault

CONTENT_TYPE = "text/javascript; charset=utf-8"
PREVIEW_CONTENT_TYPE = "audio/x-m4p"
# Enough of an MP4 header to be recognisable as AAC-in-MP4; tests needing audio register real bytes.
PLACEHOLDER_PREVIEW = (
    b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom\x00\x00\x00\x08free" + b"\x00" * 64
)


def _tokens(text: str) -> set[str]:
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return set(re.sub(r"[^0-9a-z]+", " ", folded.casefold().replace("'", "")).split())


@dataclass(slots=True)
class _Entry:
    result: dict[str, Any]
    tokens: set[str]
    decoy: bool
    in_store: bool = True
    order: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class FakeItunes(FakeService):
    """Fake `itunes.apple.com`: `/search` and `/previews/<id>.m4a`."""

    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1_440_000_001)
        self._order = itertools.count()
        self._rate_times: deque[float] = deque()
        self._rate_lock = threading.Lock()
        self._preview_faults: deque[Fault] = deque()
        self._defaults()

    def _defaults(self) -> None:
        self.entries: list[_Entry] = []
        self.previews: dict[int, bytes] = {}
        self.max_per_minute: float | None = None
        self.throttle_all = False
        self.throttle_status = 403
        with self._rate_lock:
            self._rate_times.clear()
            self._preview_faults.clear()

    def reset(self) -> None:
        """Forget the catalogue, requests, faults and options."""
        super().reset()
        self._defaults()

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/search", self._search_endpoint),
                Route("/previews/{track_id:int}.m4a", self._preview_endpoint),
            ]
        )

    # -- catalogue ----------------------------------------------------------------------
    def result_json(
        self,
        artist: str,
        title: str,
        *,
        album: str | None = None,
        genre: str = "Pop",
        duration_ms: int = 215_000,
        has_preview: bool = True,
        track_id: int | None = None,
    ) -> dict[str, Any]:
        """One song result with every field the real API sends."""
        track_id = track_id or next(self._ids)
        album = album or f"{title} - Single"
        artist_id, collection_id = 900_000_000 + track_id % 1_000_000, 1_600_000_000 + track_id % 1_000_000
        slug = quote(title.lower().replace(" ", "-"))
        result: dict[str, Any] = {
            "wrapperType": "track",
            "kind": "song",
            "artistId": artist_id,
            "collectionId": collection_id,
            "trackId": track_id,
            "artistName": artist,
            "collectionName": album,
            "trackName": title,
            "collectionCensoredName": album,
            "trackCensoredName": title,
            "artistViewUrl": f"https://music.apple.com/us/artist/x/{artist_id}?uo=4",
            "collectionViewUrl": f"https://music.apple.com/us/album/{slug}/{collection_id}?i={track_id}&uo=4",
            "trackViewUrl": f"https://music.apple.com/us/album/{slug}/{collection_id}?i={track_id}&uo=4",
            "artworkUrl30": f"https://is1-ssl.mzstatic.com/image/thumb/Music/{track_id}/30x30bb.jpg",
            "artworkUrl60": f"https://is1-ssl.mzstatic.com/image/thumb/Music/{track_id}/60x60bb.jpg",
            "artworkUrl100": f"https://is1-ssl.mzstatic.com/image/thumb/Music/{track_id}/100x100bb.jpg",
            "collectionPrice": 1.29,
            "trackPrice": 1.29,
            "releaseDate": "2013-04-19T07:00:00Z",
            "collectionExplicitness": "notExplicit",
            "trackExplicitness": "notExplicit",
            "discCount": 1,
            "discNumber": 1,
            "trackCount": 1,
            "trackNumber": 1,
            "trackTimeMillis": duration_ms,
            "country": "USA",
            "currency": "USD",
            "primaryGenreName": genre,
            "isStreamable": True,
        }
        if has_preview:
            # Filled in on the way out: the server's URL is only known once it runs.
            result["previewUrl"] = f"/previews/{track_id}.m4a"
        return result

    def add_result(
        self,
        result: dict[str, Any],
        *,
        also_found_by: str = "",
        decoy: bool = False,
        in_store: bool = True,
    ) -> int:
        """Add a raw result; it is found by its own names plus the words in `also_found_by`."""
        tokens = _tokens(
            " ".join(
                [
                    result.get("artistName", ""),
                    result.get("trackName", ""),
                    result.get("collectionName", ""),
                    also_found_by,
                ]
            )
        )
        self.entries.append(_Entry(result, tokens, decoy, in_store, next(self._order)))
        return int(result["trackId"])

    def add_track(
        self,
        artist: str,
        title: str,
        *,
        album: str | None = None,
        genre: str = "Pop",
        duration_ms: int = 215_000,
        in_store: bool = True,
        decoys: bool = True,
        has_preview: bool = True,
        preview: bytes | None = None,
    ) -> int:
        """Add a song (and, by default, its decoys); returns its trackId. `in_store=False`: decoys only."""
        result = self.result_json(
            artist, title, album=album, genre=genre, duration_ms=duration_ms, has_preview=has_preview
        )
        track_id = self.add_result(result, in_store=in_store)
        if preview is not None:
            self.previews[track_id] = preview
        if decoys:
            self.add_decoys(artist, title)
        return track_id

    def add_decoys(self, artist: str, title: str) -> list[int]:
        """Karaoke, "Made Famous By", tribute and plain-cover versions, found by the original's names."""
        versions = [
            (
                "Karaoke All Stars",
                f"{title} (Originally Performed by {artist}) [Karaoke Version]",
                "Karaoke Hits of the Year",
            ),
            ("The Hit Crew", f"{title} (Made Famous By {artist})", "Drew's Famous Party Hits"),
            (f"{artist} Tribute Band", title, f"A Tribute to {artist}"),
            ("Midnight Cover Collective", title, "Acoustic Covers, Vol. 2"),
        ]
        found_by = f"{artist} {title}"
        return [
            self.add_result(self.result_json(a, t, album=al), also_found_by=found_by, decoy=True)
            for a, t, al in versions
        ]

    def set_preview(self, track_id: int, data: bytes) -> None:
        """Serve `data` at the track's previewUrl."""
        self.previews[track_id] = data

    def preview_url(self, track_id: int) -> str:
        return f"{self.url}/previews/{track_id}.m4a"

    # -- faults -------------------------------------------------------------------------
    def throttle(self, *, times: int = 1, status: int = 403, retry_after: str | None = None) -> None:
        """The next `times` searches answer `status` with an empty body, as Apple throttles."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.inject(Fault(status, b"", headers=headers), times=times)

    def inject_preview(self, *faults: Fault, times: int = 1) -> None:
        """Queue faults for the next preview downloads."""
        with self._rate_lock:
            for _ in range(times):
                self._preview_faults.extend(faults)

    def _over_rate(self) -> bool:
        if self.max_per_minute is None:
            return False
        now = time.monotonic()
        with self._rate_lock:
            while self._rate_times and now - self._rate_times[0] >= 60.0:
                self._rate_times.popleft()
            if len(self._rate_times) >= self.max_per_minute:
                return True
            self._rate_times.append(now)
            return False

    # -- HTTP ---------------------------------------------------------------------------
    async def _search_endpoint(self, request: Request) -> Response:
        return await self._dispatch(request, self._search)

    async def _search(self, request: Request) -> Response:
        if self.throttle_all or self._over_rate():
            return Fault(self.throttle_status).response()
        q = request.query_params
        term_tokens = _tokens((q.get("term") or "").replace("+", " "))
        try:
            limit = min(200, max(1, int(q.get("limit") or 50)))
        except ValueError:
            limit = 50
        results: list[dict[str, Any]] = []
        if term_tokens:
            found = [e for e in self.entries if e.in_store and term_tokens <= e.tokens]
            found.sort(key=lambda e: (not e.decoy, e.order))  # covers and karaoke rank first
            base = str(request.base_url).rstrip("/")
            for entry in found[:limit]:
                result = dict(entry.result)
                if "previewUrl" in result and result["previewUrl"].startswith("/"):
                    result["previewUrl"] = base + result["previewUrl"]
                results.append(result)
        body = "\n\n\n" + json.dumps({"resultCount": len(results), "results": results}) + "\n"
        return Response(body, headers={"content-type": CONTENT_TYPE})

    async def _preview_endpoint(self, request: Request) -> Response:
        return await self._dispatch(request, self._preview, faults=False)

    async def _preview(self, request: Request) -> Response:
        with self._rate_lock:
            fault = self._preview_faults.popleft() if self._preview_faults else None
        if fault is not None:
            return fault.response()
        track_id = int(request.path_params["track_id"])
        known = any(e.result.get("trackId") == track_id and "previewUrl" in e.result for e in self.entries)
        if track_id not in self.previews and not known:
            return Response(b"", status_code=404)
        data = self.previews.get(track_id, PLACEHOLDER_PREVIEW)
        return Response(data, headers={"content-type": PREVIEW_CONTENT_TYPE})
