"""iTunes Search API: find a track's 30-second preview, and pick the right one among covers."""

from __future__ import annotations

import json
import logging
import random
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from haunt_fm.clients._http import (
    ClientError,
    Limiter,
    RateLimiter,
    RetryPolicy,
    ServiceClient,
    SleepFn,
    describe_transport_error,
)
from haunt_fm.pipeline.tracks.identity import normalize_artist, normalize_title

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://itunes.apple.com"


class ItunesError(ClientError):
    """The iTunes Search API failed or answered something unreadable."""


class ItunesRateLimited(ItunesError):
    """iTunes kept throttling us (HTTP 403 with an empty body, or 429); try again later."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, transient=True, status=status, retry_after=retry_after)


@dataclass(frozen=True, slots=True)
class ItunesTrack:
    """One song from the iTunes Search API."""

    track_id: int
    artist_name: str
    track_name: str
    collection_name: str | None
    preview_url: str | None
    track_time_millis: int | None
    primary_genre_name: str | None
    artwork_url: str | None
    track_view_url: str | None
    kind: str | None
    wrapper_type: str | None


class ItunesClient(ServiceClient):
    """Async iTunes Search client: about 20 requests a minute, long backoff when throttled."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        rate_per_minute: float = 20.0,
        country: str = "US",
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        sleep: SleepFn | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            http,
            # Apple's throttle lasts about a minute: wait 10 s, 20 s, 40 s before giving up.
            retry=retry or RetryPolicy(max_attempts=4, base_delay=10.0, max_delay=120.0),
            limiter=limiter or RateLimiter.per_minute(rate_per_minute),
            sleep=sleep,
            rng=rng,
        )
        self.base_url = base_url.rstrip("/")
        self.country = country

    async def search(self, term: str, limit: int = 25) -> list[ItunesTrack]:
        """Songs matching `term`, in Apple's order; raises ItunesRateLimited rather than answer empty."""
        term = " ".join(term.split())
        if not term:
            # Apple answers an empty term with zero results; don't spend a request on it.
            return []
        params = {
            "term": term,
            "media": "music",
            "entity": "song",
            "limit": str(max(1, min(200, int(limit)))),
            "country": self.country,
        }

        async def attempt() -> Any:
            return await self._call(params)

        payload = await self._with_retries(
            attempt,
            what=f"iTunes search for {term!r}",
            throttled=lambda exc: isinstance(exc, ItunesRateLimited),
        )
        return parse_results(payload)

    async def find(self, artist: str, title: str, *, limit: int = 25) -> ItunesTrack | None:
        """Search for `artist title` and return the best matching song with a preview, if any."""
        results = await self.search(f"{artist} {title}", limit=limit)
        return best_match(artist, title, results)

    async def _call(self, params: dict[str, str]) -> Any:
        await self._wait_turn()
        try:
            response = await self._http.get(f"{self.base_url}/search", params=params)
        except httpx.TimeoutException as exc:
            raise ItunesError(
                f"The iTunes Search API did not answer in time ({describe_transport_error(exc)})",
                transient=True,
            ) from None
        except httpx.TransportError as exc:
            raise ItunesError(
                f"The iTunes Search API could not be reached ({describe_transport_error(exc)})",
                transient=True,
            ) from None
        status = response.status_code
        if status in (403, 429):
            # Apple throttles with a bare 403 (sometimes 429); it never means "not found".
            raise ItunesRateLimited(
                f"The iTunes Search API is throttling requests (HTTP {status}); try again in a minute",
                status=status,
                retry_after=_retry_after(response),
            )
        if status >= 500:
            raise ItunesError(f"The iTunes Search API answered HTTP {status}", transient=True, status=status)
        if status != 200:
            raise ItunesError(f"The iTunes Search API answered HTTP {status}", transient=False, status=status)
        # Served as text/javascript with leading blank lines: parse the text, not by content type.
        try:
            return json.loads(response.text.strip())
        except ValueError:
            raise ItunesError(
                "The iTunes Search API answered with a body that is not JSON", transient=True, status=status
            ) from None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def parse_results(payload: Any) -> list[ItunesTrack]:
    """The songs in a decoded search body; entries that aren't songs or lack ids are skipped."""
    if not isinstance(payload, dict):
        raise ItunesError("The iTunes Search API answered JSON of an unexpected shape", transient=False)
    results = payload.get("results") or []
    if isinstance(results, dict):
        results = [results]
    tracks: list[ItunesTrack] = []
    for raw in results if isinstance(results, list) else []:
        if not isinstance(raw, dict):
            continue
        wrapper, kind = _str(raw.get("wrapperType")), _str(raw.get("kind"))
        if (wrapper and wrapper != "track") or (kind and kind != "song"):
            continue
        track_id = _int(raw.get("trackId"))
        artist, name = _str(raw.get("artistName")), _str(raw.get("trackName"))
        if track_id is None or not artist or not name:
            continue
        tracks.append(
            ItunesTrack(
                track_id=track_id,
                artist_name=artist,
                track_name=name,
                collection_name=_str(raw.get("collectionName")),
                preview_url=_str(raw.get("previewUrl")),
                track_time_millis=_int(raw.get("trackTimeMillis")),
                primary_genre_name=_str(raw.get("primaryGenreName")),
                artwork_url=_str(raw.get("artworkUrl100")),
                track_view_url=_str(raw.get("trackViewUrl")),
                kind=kind,
                wrapper_type=wrapper,
            )
        )
    return tracks


# --- choosing the right result -------------------------------------------------------------

# Words that mark a re-recording sold under the original's name. Checked only when the
# wanted artist and title don't contain them themselves (Tenacious D's "Tribute" is real).
_DECOY_MARKERS = (
    "karaoke",
    "tribute",
    "originally performed",
    "originally by",
    "made famous",
    "in the style of",
    "as performed by",
    "backing track",
    "cover version",
    "re recorded",
)
# How iTunes joins credits: "Daft Punk & Pharrell Williams", "A, B & C", "A x B", "A feat. B".
# "+" and "/" are left alone: they belong to band names ("Florence + the Machine", "AC/DC").
_CREDIT_SPLIT = re.compile(r"\s*(?:,|&|;|\s(?:and|x|vs\.?|with|feat\.?|ft\.?|featuring)\s)\s*", re.IGNORECASE)
_FEAT_BRACKET = re.compile(r"[\(\[]\s*(?:feat\.?|ft\.?|featuring|with)\s[^\)\]]*[\)\]]", re.IGNORECASE)
_FEAT_INLINE = re.compile(r"\s(?:feat\.?|ft\.?|featuring)\s.*$", re.IGNORECASE)
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def _plain(text: str) -> str:
    """Case, accents and punctuation folded away, nothing else: for marker and exact checks."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    stripped = stripped.replace("&", " and ")
    stripped = re.sub(r"['’‘`´]", "", stripped)
    return " ".join(_NON_ALNUM.sub(" ", stripped).split())


def _exact_title(title: str) -> str:
    # A featured-artist credit is not a different version, so an "exact" title ignores it.
    return _plain(_FEAT_INLINE.sub("", _FEAT_BRACKET.sub(" ", title)))


def _credits(artist: str) -> list[str]:
    parts = (normalize_artist(part) for part in _CREDIT_SPLIT.split(artist) if part.strip())
    return [part for part in parts if part]


def _is_decoy(track: ItunesTrack, wanted: str) -> bool:
    text = _plain(" ".join(filter(None, (track.artist_name, track.track_name, track.collection_name))))
    padded = f" {text} "
    return any(f" {m}" in padded and f" {m}" not in f" {wanted} " for m in _DECOY_MARKERS)


def _artist_tier(wanted: str, wanted_primary: str, candidate: str) -> int:
    """3: same artist; 2: the wanted artist is one credit of several; 1: the wanted primary alone."""
    norm = normalize_artist(candidate)
    if norm == wanted:
        return 3
    if wanted in _credits(candidate):
        return 2
    # Wanted "Daft Punk & Pharrell Williams", listed under "Daft Punk" alone.
    if norm == wanted_primary:
        return 1
    return 0


def best_match(artist: str, title: str, results: Iterable[ItunesTrack]) -> ItunesTrack | None:
    """The result that is this very song (not a cover, karaoke or tribute) with a preview, or None."""
    wanted_artist, wanted_title = normalize_artist(artist), normalize_title(title)
    wanted_primary = next(iter(_credits(artist)), wanted_artist)
    wanted_exact = _exact_title(title)
    wanted_plain = _plain(f"{artist} {title}")

    best: ItunesTrack | None = None
    best_score: tuple[int, int] = (0, 0)
    for track in results:
        if not track.preview_url:
            continue
        if normalize_title(track.track_name) != wanted_title:
            continue
        artist_tier = _artist_tier(wanted_artist, wanted_primary, track.artist_name)
        if artist_tier == 0 or _is_decoy(track, wanted_plain):
            continue
        # The same title beats a same-recording variant ("- Radio Edit", "(Live)").
        title_tier = 2 if _exact_title(track.track_name) == wanted_exact else 1
        score = (title_tier, artist_tier)
        # Strictly better only: among equals, Apple's relevance order stands.
        if score > best_score:
            best, best_score = track, score
    return best
