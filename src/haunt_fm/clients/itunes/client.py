"""iTunes Search API: find a track's 30-second preview, and pick the right one among covers."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from typing import Any

import httpx

from haunt_fm.clients._http import (
    ClientError,
    Limiter,
    RetryPolicy,
    ServiceClient,
    SleepFn,
    describe_transport_error,
    parse_retry_after,
)

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
    """Async iTunes Search client: long backoff when throttled; pass the shared limiter (~20/min)."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
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
            limiter=limiter,
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
                retry_after=parse_retry_after(response.headers.get("retry-after")),
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
