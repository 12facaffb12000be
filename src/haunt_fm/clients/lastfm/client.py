"""Last.fm `track.getSimilar`: a thin async client that returns typed results."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
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
            "api_key": self._api_key,
            "format": "json",
            "autocorrect": "1",
            "limit": str(max(1, int(limit))),
        }

        async def attempt() -> Any:
            return await self._call(params)

        payload = await self._with_retries(
            attempt,
            what=f"Last.fm track.getSimilar for {artist!r} - {title!r}",
            throttled=lambda exc: isinstance(exc, LastfmError) and exc.code == _RATE_LIMITED,
        )
        if payload is None:
            return SimilarResult(artist=artist, title=title, tracks=[])
        return parse_similar(payload, artist=artist, title=title)

    async def _call(self, params: dict[str, str]) -> Any:
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
        return self._decode(response)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***")

    def _decode(self, response: httpx.Response) -> Any:
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
            return self._error(body, status)
        if status >= 500 or status == 429:
            raise LastfmError(f"Last.fm answered HTTP {status}", transient=True, status=status)
        if status != 200:
            raise LastfmError(f"Last.fm answered HTTP {status}", transient=False, status=status)
        return body

    def _error(self, body: dict[str, Any], status: int) -> None:
        try:
            code: int | None = int(body["error"])
        except (TypeError, ValueError):
            code = None
        detail = self._redact(str(body.get("message") or "no message")).rstrip(".")
        if code in _NOT_FOUND:
            logger.debug("Last.fm error 6 (%s): treating as no similar tracks", detail)
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


def _parse_track(raw: Any) -> SimilarTrack | None:
    if not isinstance(raw, dict):
        return None
    name = _text(raw.get("name"))
    artist_raw = raw.get("artist")
    if isinstance(artist_raw, dict):
        artist = _text(artist_raw.get("name")) or _text(artist_raw)
        artist_mbid = _text(artist_raw.get("mbid"))
    else:
        artist, artist_mbid = _text(artist_raw), None
    if not name or not artist:
        return None
    match = _float(raw.get("match"))
    duration = _int(raw.get("duration"))
    images: dict[str, str] = {}
    for image in _as_list(raw.get("image")):
        if not isinstance(image, dict):
            continue
        size, url = _text(image.get("size")), _text(image.get("#text"))
        # The sizeless sixth entry repeats "mega"; empty URLs mean "no image".
        if size and url:
            images[size] = url
    return SimilarTrack(
        name=name,
        artist=artist,
        artist_mbid=artist_mbid,
        mbid=_text(raw.get("mbid")),
        match=min(1.0, max(0.0, match)) if match is not None else 0.0,
        playcount=max(0, _int(raw.get("playcount")) or 0),
        duration_s=duration if duration and duration > 0 else None,
        url=_text(raw.get("url")),
        images=images,
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
