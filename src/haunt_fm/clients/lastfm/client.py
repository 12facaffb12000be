"""Last.fm: a thin async client that returns typed results.

Methods: `track.getSimilar` (discovery), `track.getTopTags` (tags), `tag.getTopTracks`
(discovery by tag) and `user.getRecentTracks` (history import). Every call goes through one
rate limiter and one retry path; the API key never reaches a log line or an error message.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from haunt_fm.clients._http import (
    ClientError,
    Limiter,
    RetryPolicy,
    ServiceClient,
    SleepFn,
    describe_transport_error,
    install_log_redaction,
    secret_value,
)

logger = logging.getLogger(__name__)
# The key travels in the query string, and httpx logs every request URL at INFO.
install_log_redaction()

DEFAULT_BASE_URL = "https://ws.audioscrobbler.com/2.0/"

# Last.fm error codes (https://www.last.fm/api/errorcodes).
_NOT_FOUND = {6}  # "Invalid parameters": track not found, or a missing artist/track
_AUTH = {10, 26}  # invalid API key, suspended API key
_TRANSIENT = {8, 11, 16, 29}  # operation failed, service offline, temporary error, rate limit
_RATE_LIMITED = 29
_LOGIN_REQUIRED = 17  # "Login: User required to be logged in": a user who hides their listening

# user.getRecentTracks answers at most 200 scrobbles a page.
MAX_RECENT_LIMIT = 200
PRIVACY_SETTINGS_URL = "https://www.last.fm/settings/privacy"


class LastfmError(ClientError):
    """Last.fm answered with an error or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, transient=transient, status=status, retry_after=retry_after)
        self.code = code


class LastfmAuthError(LastfmError):
    """Last.fm rejected the API key (invalid or suspended); retrying will not help."""


class LastfmUserNotFound(LastfmError):
    """Last.fm has no user by that name (error 6, HTTP 404); retrying will not help."""

    def __init__(self, user: str, *, status: int | None = None, code: int | None = 6) -> None:
        super().__init__(
            f"Last.fm has no user called {user!r}; check the spelling of the Last.fm username",
            transient=False,
            status=status,
            code=code,
        )
        self.user = user


class LastfmPrivateProfile(LastfmError):
    """The user hides their recent listening on Last.fm (error 17); retrying will not help."""

    def __init__(self, user: str, *, status: int | None = None, code: int | None = _LOGIN_REQUIRED) -> None:
        super().__init__(
            f"Last.fm user {user!r} keeps their listening history private; they can untick "
            f"'Hide recent listening information' at {PRIVACY_SETTINGS_URL} and try again",
            transient=False,
            status=status,
            code=code,
        )
        self.user = user


# Builds the typed error for one error code of one method: (status, code) -> error.
_ErrorFactory = Callable[[int, int], LastfmError]


@dataclass(frozen=True, slots=True)
class SimilarTrack:
    """One track Last.fm considers similar to the query track."""

    name: str
    artist: str
    artist_mbid: str | None
    mbid: str | None
    match: float
    playcount: int
    duration_s: int | None
    url: str | None
    images: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SimilarResult:
    """The answer to one `track.getSimilar` query; `artist` is Last.fm's corrected spelling."""

    artist: str
    title: str
    tracks: list[SimilarTrack]

    @property
    def found(self) -> bool:
        return bool(self.tracks)


@dataclass(frozen=True, slots=True)
class TopTag:
    """One crowd-written tag on a track, as Last.fm spells it; `count` is its weight, 0..100."""

    name: str
    count: int
    url: str | None


@dataclass(frozen=True, slots=True)
class Paging:
    """Where a page sits in a paged Last.fm answer (Last.fm sends these numbers as strings)."""

    page: int
    per_page: int
    total_pages: int
    total: int

    @property
    def has_next(self) -> bool:
        return self.page < self.total_pages


@dataclass(frozen=True, slots=True)
class TagTrack:
    """One of a tag's top tracks; `rank` is its place in the tag's chart (1 = top)."""

    name: str
    artist: str
    artist_mbid: str | None
    mbid: str | None
    url: str | None
    duration_s: int | None
    rank: int | None
    images: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TagTopTracks:
    """One page of `tag.getTopTracks`; an unknown tag has no tracks and zero pages."""

    tag: str
    tracks: list[TagTrack]
    paging: Paging


@dataclass(frozen=True, slots=True)
class Scrobble:
    """One played track from a user's history; `played_at` is Last.fm's `date.uts`, in UTC."""

    artist: str
    artist_mbid: str | None
    name: str
    mbid: str | None
    album: str | None
    album_mbid: str | None
    url: str | None
    played_at: datetime


@dataclass(frozen=True, slots=True)
class RecentTracksPage:
    """One page of `user.getRecentTracks`, newest first.

    `now_playing` says the page carried a now-playing row (no date: it is not a scrobble yet,
    so it is not among `scrobbles`); `malformed` counts rows left out for lacking an artist,
    a title or a readable date.
    """

    user: str
    scrobbles: list[Scrobble]
    paging: Paging
    now_playing: bool
    malformed: int = 0


class LastfmClient(ServiceClient):
    """Async Last.fm client: rate limited, retries transient failures, never logs the API key."""

    def __init__(
        self,
        api_key: Any,
        base_url: str = DEFAULT_BASE_URL,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        sleep: SleepFn | None = None,
        rng: random.Random | None = None,
    ) -> None:
        key = secret_value(api_key).strip() if api_key is not None else ""
        if not key:
            raise LastfmAuthError(
                "No Last.fm API key is configured; set HAUNTFM_LASTFM_API_KEY", transient=False
            )
        super().__init__(
            http,
            retry=retry or RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=30.0),
            limiter=limiter,
            sleep=sleep,
            rng=rng,
        )
        self._api_key = key
        self.base_url = base_url

    async def get_similar(self, artist: str, title: str, limit: int = 50) -> SimilarResult:
        """Tracks similar to `artist - title`, best match first; empty when Last.fm doesn't know it."""
        artist, title = artist.strip(), title.strip()
        if not artist or not title:
            return SimilarResult(artist=artist, title=title, tracks=[])
        params = {
            "method": "track.getsimilar",
            "artist": artist,
            "track": title,
            "autocorrect": "1",
            "limit": str(max(1, int(limit))),
        }
        payload = await self._request(params, what=f"Last.fm track.getSimilar for {artist!r} - {title!r}")
        if payload is None:
            return SimilarResult(artist=artist, title=title, tracks=[])
        return parse_similar(payload, artist=artist, title=title)

    async def get_top_tags(self, artist: str, title: str) -> list[TopTag]:
        """The track's tags, heaviest first; empty when Last.fm doesn't know the track."""
        artist, title = artist.strip(), title.strip()
        if not artist or not title:
            return []
        params = {"method": "track.gettoptags", "artist": artist, "track": title, "autocorrect": "1"}
        payload = await self._request(params, what=f"Last.fm track.getTopTags for {artist!r} - {title!r}")
        return parse_top_tags(payload)

    async def get_tag_top_tracks(self, tag: str, *, limit: int = 50, page: int = 1) -> TagTopTracks:
        """One page of the tag's top tracks, best ranked first; empty for a tag nobody uses."""
        tag = " ".join(tag.split())
        limit, page = max(1, int(limit)), max(1, int(page))
        if not tag:
            return TagTopTracks(tag=tag, tracks=[], paging=Paging(page, limit, 0, 0))
        params = {"method": "tag.gettoptracks", "tag": tag, "limit": str(limit), "page": str(page)}
        payload = await self._request(params, what=f"Last.fm tag.getTopTracks for {tag!r} page {page}")
        return parse_tag_top_tracks(payload, tag=tag, limit=limit, page=page)

    async def get_recent_tracks(
        self,
        user: str,
        *,
        page: int = 1,
        limit: int = MAX_RECENT_LIMIT,
        from_uts: int | None = None,
        to_uts: int | None = None,
    ) -> RecentTracksPage:
        """One page of the user's scrobbles, newest first (`limit` at most 200; `from`/`to` in Unix s).

        Raises LastfmUserNotFound for an unknown user and LastfmPrivateProfile for one who hides
        their listening; neither is transient.
        """
        user = user.strip()
        if not user:
            raise LastfmUserNotFound(user)
        limit, page = max(1, min(MAX_RECENT_LIMIT, int(limit))), max(1, int(page))
        params = {"method": "user.getrecenttracks", "user": user, "limit": str(limit), "page": str(page)}
        if from_uts is not None:
            params["from"] = str(int(from_uts))
        if to_uts is not None:
            params["to"] = str(int(to_uts))
        errors: dict[int, _ErrorFactory] = {
            6: lambda status, code: LastfmUserNotFound(user, status=status, code=code),
            _LOGIN_REQUIRED: lambda status, code: LastfmPrivateProfile(user, status=status, code=code),
        }
        payload = await self._request(
            params, what=f"Last.fm user.getRecentTracks for {user!r} page {page}", errors=errors
        )
        return parse_recent_tracks(payload, user=user, limit=limit, page=page)

    async def _request(
        self, params: dict[str, str], *, what: str, errors: Mapping[int, _ErrorFactory] | None = None
    ) -> Any:
        """Call one method under the rate limit and the retry policy; None means "not found".

        `errors` maps Last.fm error codes to the typed error this method raises for them, in
        place of the default handling (error 6 reads as "not found" unless it is mapped).
        """
        query = {**params, "api_key": self._api_key, "format": "json"}

        async def attempt() -> Any:
            return await self._call(query, errors=errors)

        return await self._with_retries(
            attempt,
            what=what,
            throttled=lambda exc: isinstance(exc, LastfmError) and exc.code == _RATE_LIMITED,
        )

    async def _call(
        self, params: dict[str, str], *, errors: Mapping[int, _ErrorFactory] | None = None
    ) -> Any:
        """One HTTP round trip; returns the decoded body, None for "not found", or raises."""
        await self._wait_turn()
        try:
            response = await self._http.get(self.base_url, params=params)
        except httpx.TimeoutException as exc:
            raise LastfmError(
                f"Last.fm did not answer in time ({describe_transport_error(exc)})", transient=True
            ) from None
        except httpx.TransportError as exc:
            raise LastfmError(
                f"Last.fm could not be reached ({self._redact(describe_transport_error(exc))})",
                transient=True,
            ) from None
        return self._decode(response, errors)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***")

    def _decode(self, response: httpx.Response, errors: Mapping[int, _ErrorFactory] | None = None) -> Any:
        status = response.status_code
        try:
            body = json.loads(response.text)
        except ValueError:
            # Proxies and maintenance pages answer HTML; an unreadable 200 is a truncated answer.
            transient = status >= 500 or status in (200, 429)
            raise LastfmError(
                f"Last.fm answered HTTP {status} with a body that is not JSON",
                transient=transient,
                status=status,
            ) from None

        if isinstance(body, dict) and "error" in body:
            return self._error(body, status, errors)
        if status >= 500 or status == 429:
            raise LastfmError(f"Last.fm answered HTTP {status}", transient=True, status=status)
        if status != 200:
            raise LastfmError(f"Last.fm answered HTTP {status}", transient=False, status=status)
        return body

    def _error(
        self, body: dict[str, Any], status: int, errors: Mapping[int, _ErrorFactory] | None = None
    ) -> None:
        try:
            code: int | None = int(body["error"])
        except (TypeError, ValueError):
            code = None
        detail = self._redact(str(body.get("message") or "no message")).rstrip(".")
        if errors and code is not None and code in errors:
            raise errors[code](status, code)
        if code in _NOT_FOUND:
            logger.debug("Last.fm error 6 (%s): treating as not found", detail)
            return None
        if code in _AUTH:
            raise LastfmAuthError(
                f"Last.fm rejected the API key (error {code}: {detail}); check HAUNTFM_LASTFM_API_KEY",
                transient=False,
                status=status,
                code=code,
            )
        transient = code in _TRANSIENT
        raise LastfmError(
            f"Last.fm answered error {code} ({detail})", transient=transient, status=status, code=code
        )


def _as_list(value: Any) -> list[Any]:
    # Last.fm sends a bare object instead of a one-element list in places.
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [value]


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("#text")
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _artist(raw: Any) -> tuple[str | None, str | None]:
    """(name, mbid) of an artist written as {"name"|"#text", "mbid"?} or as a bare string."""
    if isinstance(raw, dict):
        return _text(raw.get("name")) or _text(raw), _text(raw.get("mbid"))
    return _text(raw), None


def _images(raw: Any) -> dict[str, str]:
    images: dict[str, str] = {}
    for image in _as_list(raw):
        if not isinstance(image, dict):
            continue
        size, url = _text(image.get("size")), _text(image.get("#text"))
        # The sizeless sixth entry repeats "mega"; empty URLs mean "no image".
        if size and url:
            images[size] = url
    return images


def _duration(raw: Any) -> int | None:
    duration = _int(raw)
    return duration if duration and duration > 0 else None


def _parse_track(raw: Any) -> SimilarTrack | None:
    if not isinstance(raw, dict):
        return None
    name = _text(raw.get("name"))
    artist, artist_mbid = _artist(raw.get("artist"))
    if not name or not artist:
        return None
    match = _float(raw.get("match"))
    return SimilarTrack(
        name=name,
        artist=artist,
        artist_mbid=artist_mbid,
        mbid=_text(raw.get("mbid")),
        match=min(1.0, max(0.0, match)) if match is not None else 0.0,
        playcount=max(0, _int(raw.get("playcount")) or 0),
        duration_s=_duration(raw.get("duration")),
        url=_text(raw.get("url")),
        images=_images(raw.get("image")),
    )


def parse_similar(payload: Any, *, artist: str, title: str) -> SimilarResult:
    """Turn a decoded `track.getSimilar` body into a SimilarResult, skipping malformed entries."""
    block = payload.get("similartracks") if isinstance(payload, dict) else None
    if not isinstance(block, dict):
        return SimilarResult(artist=artist, title=title, tracks=[])
    attr = block.get("@attr")
    corrected = _text(attr.get("artist")) if isinstance(attr, dict) else None
    tracks = [t for t in map(_parse_track, _as_list(block.get("track"))) if t is not None]
    tracks.sort(key=lambda t: t.match, reverse=True)
    return SimilarResult(artist=corrected or artist, title=title, tracks=tracks)


def parse_top_tags(payload: Any) -> list[TopTag]:
    """The tags in a decoded `track.getTopTags` body, heaviest first; nameless entries skipped.

    Counts arrive as numbers or strings and are clamped to Last.fm's 0..100 scale.
    """
    block = payload.get("toptags") if isinstance(payload, dict) else None
    if not isinstance(block, dict):
        return []
    tags: list[TopTag] = []
    for raw in _as_list(block.get("tag")):
        if not isinstance(raw, dict):
            continue
        name = _text(raw.get("name"))
        if not name:
            continue
        count = _int(raw.get("count")) or 0
        tags.append(TopTag(name=name, count=min(100, max(0, count)), url=_text(raw.get("url"))))
    # Stable: equal counts keep Last.fm's order.
    tags.sort(key=lambda t: t.count, reverse=True)
    return tags


def _paging(attr: Any, *, page: int, limit: int, count: int) -> Paging:
    """Paging from an `@attr` block; what is missing falls back to what was asked and received."""
    attr = attr if isinstance(attr, dict) else {}
    per_page = _int(attr.get("perPage"))
    total = _int(attr.get("total"))
    total_pages = _int(attr.get("totalPages"))
    return Paging(
        page=max(1, _int(attr.get("page")) or page),
        per_page=per_page if per_page and per_page > 0 else limit,
        total_pages=max(0, total_pages if total_pages is not None else (page if count else 0)),
        total=max(0, total if total is not None else count),
    )


def _parse_tag_track(raw: Any) -> TagTrack | None:
    if not isinstance(raw, dict):
        return None
    name = _text(raw.get("name"))
    artist, artist_mbid = _artist(raw.get("artist"))
    if not name or not artist:
        return None
    attr = raw.get("@attr")
    return TagTrack(
        name=name,
        artist=artist,
        artist_mbid=artist_mbid,
        mbid=_text(raw.get("mbid")),
        url=_text(raw.get("url")),
        duration_s=_duration(raw.get("duration")),
        rank=_int(attr.get("rank")) if isinstance(attr, dict) else None,
        images=_images(raw.get("image")),
    )


def parse_tag_top_tracks(payload: Any, *, tag: str, limit: int = 50, page: int = 1) -> TagTopTracks:
    """One page of a decoded `tag.getTopTracks` body (None: an unknown tag), malformed entries skipped."""
    block = payload.get("tracks") if isinstance(payload, dict) else None
    if not isinstance(block, dict):
        return TagTopTracks(tag=tag, tracks=[], paging=Paging(page, limit, 0, 0))
    attr = block.get("@attr")
    tracks = [t for t in map(_parse_tag_track, _as_list(block.get("track"))) if t is not None]
    # Rankless entries keep their place after the ranked ones.
    tracks.sort(key=lambda t: (t.rank is None, t.rank or 0))
    named = _text(attr.get("tag")) if isinstance(attr, dict) else None
    return TagTopTracks(
        tag=named or tag, tracks=tracks, paging=_paging(attr, page=page, limit=limit, count=len(tracks))
    )


def _played_at(raw: Any) -> datetime | None:
    uts = _int(raw.get("uts")) if isinstance(raw, dict) else None
    if uts is None or uts <= 0:
        return None
    try:
        return datetime.fromtimestamp(uts, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _is_now_playing(raw: dict[str, Any]) -> bool:
    attr = raw.get("@attr")
    return isinstance(attr, dict) and str(attr.get("nowplaying", "")).lower() == "true"


def parse_recent_tracks(
    payload: Any, *, user: str, limit: int = MAX_RECENT_LIMIT, page: int = 1
) -> RecentTracksPage:
    """One page of a decoded `user.getRecentTracks` body: scrobbles newest first, the now-playing
    row left out (and reported), rows without artist, title or date counted as malformed."""
    block = payload.get("recenttracks") if isinstance(payload, dict) else None
    if not isinstance(block, dict):
        return RecentTracksPage(user=user, scrobbles=[], paging=Paging(page, limit, 0, 0), now_playing=False)
    attr = block.get("@attr")
    scrobbles: list[Scrobble] = []
    now_playing = False
    malformed = 0
    for raw in _as_list(block.get("track")):
        if isinstance(raw, dict) and _is_now_playing(raw) and "date" not in raw:
            now_playing = True
            continue
        scrobble = _parse_scrobble(raw)
        if scrobble is None:
            malformed += 1
        else:
            scrobbles.append(scrobble)
    named = _text(attr.get("user")) if isinstance(attr, dict) else None
    return RecentTracksPage(
        user=named or user,
        scrobbles=scrobbles,
        paging=_paging(attr, page=page, limit=limit, count=len(scrobbles)),
        now_playing=now_playing,
        malformed=malformed,
    )


def _parse_scrobble(raw: Any) -> Scrobble | None:
    if not isinstance(raw, dict):
        return None
    name = _text(raw.get("name"))
    artist, artist_mbid = _artist(raw.get("artist"))
    played_at = _played_at(raw.get("date"))
    if not name or not artist or played_at is None:
        return None
    album_raw = raw.get("album")
    return Scrobble(
        artist=artist,
        artist_mbid=artist_mbid,
        name=name,
        mbid=_text(raw.get("mbid")),
        album=_text(album_raw),
        album_mbid=_text(album_raw.get("mbid")) if isinstance(album_raw, dict) else None,
        url=_text(raw.get("url")),
        played_at=played_at,
    )
