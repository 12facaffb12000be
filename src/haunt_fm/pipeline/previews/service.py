"""Preview lookup: find a track's 30-second iTunes preview and decide what the answer means."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm.clients.itunes import ItunesClient, ItunesError, ItunesRateLimited, ItunesTrack
from haunt_fm.pipeline.previews import repository
from haunt_fm.pipeline.previews.matching import best_match

# Covers and karaoke versions crowd the top of Apple's answer: ask for enough to reach the original.
SEARCH_LIMIT = 50

# Version and credit noise that makes Apple's search miss: "(feat. X)", "[Remastered 2011]",
# "- Radio Edit", "(Live)". The identity rule still decides which result is the same song.
_NOISE_BRACKET = re.compile(
    r"\s*[\(\[][^\)\]]*\b(feat|ft|featuring|with|remaster(ed)?|edit|version|live|mono|stereo|deluxe|bonus)\b"
    r"[^\)\]]*[\)\]]",
    re.IGNORECASE,
)
_NOISE_DASH = re.compile(
    r"\s+-\s+[^-]*\b(remaster(ed)?|edit|version|live|mono|stereo|deluxe|bonus)\b.*$", re.IGNORECASE
)
_FEAT = re.compile(r"\s+(feat\.?|ft\.?|featuring)\s+.*$", re.IGNORECASE)

Kind = Literal["found", "not_found", "throttled", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one lookup came to; `match` is set when found."""

    kind: Kind
    message: str | None = None
    match: ItunesTrack | None = None
    checked: int = 0


def search_term(artist: str, title: str) -> str:
    """`artist title` without the credit and version noise that hides the song from the search."""
    clean_title = _NOISE_DASH.sub("", _NOISE_BRACKET.sub("", title)).strip() or title
    clean_artist = _FEAT.sub("", artist).strip() or artist
    return f"{clean_artist} {clean_title}"


async def lookup(client: ItunesClient, *, artist: str, title: str) -> Outcome:
    """Search iTunes for the song; throttling and transient errors are outcomes, not exceptions."""
    try:
        results = await client.search(search_term(artist, title), limit=SEARCH_LIMIT)
    except ItunesRateLimited as exc:
        return Outcome("throttled", exc.message)
    except ItunesError as exc:
        return Outcome("retry" if exc.transient else "failed", exc.message)
    match = best_match(artist, title, results)
    if match is None:
        return Outcome(
            "not_found",
            f"No song by {artist} titled {title} with a preview in the iTunes store "
            f"({len(results)} result(s) checked).",
            checked=len(results),
        )
    return Outcome("found", match=match, checked=len(results))


def found_values(match: ItunesTrack) -> dict[str, Any]:
    """The track columns an iTunes match fills."""
    return {
        "preview_url": match.preview_url,
        "itunes_track_id": match.track_id,
        "itunes_album": match.collection_name,
        "genre": match.primary_genre_name,
        "duration_ms": match.track_time_millis,
        "artwork_url": match.artwork_url,
    }


async def retry_failed(session: AsyncSession) -> int:
    """Put every failed preview lookup back in the queue now; returns how many."""
    return await repository.requeue_failed(session)
