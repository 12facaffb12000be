"""Which iTunes search result is the very song asked for: not a cover, karaoke or tribute.

Domain rules (the track identity rule decides "same song"); the iTunes client only parses.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from haunt_fm.clients.itunes import ItunesTrack
from haunt_fm.pipeline.tracks.identity import normalize_artist, normalize_title

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
