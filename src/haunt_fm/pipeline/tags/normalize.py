"""Tag normalisation: one rule that decides when two crowd-written tags are the same tag,
and which tags say nothing about the sound.

The rule (`normalize_tag`):

1. Unicode NFKD with combining marks dropped (``Électronique`` = ``electronique``), case
   folded (``Lo-Fi`` = ``lo-fi``).
2. Apostrophes vanish (``90's`` = ``90s``, ``rock 'n' roll`` = ``rock n roll``); ``&`` and
   ``+`` read as ``and``; every other character that is not a letter or a digit (hyphens,
   slashes, dots, underscores, other punctuation) is a space; runs of spaces collapse.
3. The canonical form is lower-case words separated by single spaces: ``lo-fi``,
   ``lo fi`` and ``Lo Fi`` are ``lo fi``, ``hip-hop`` and ``Hip Hop`` are ``hip hop``.
   Spellings that run the words together are split by a short table (`JOINED`): ``lofi``
   is ``lo fi``, ``hiphop`` is ``hip hop``, ``postrock`` is ``post rock`` ... A lone ``n``
   between two words reads as ``and`` (``drum n bass`` = ``drum & bass`` = ``drum and bass``).
4. Tags that say nothing about the sound are dropped (None): the exact tags in
   `NOISE_TAGS` (``seen live``, ``favourites``, ``albums i own``, ``awesome``, ``love`` ...),
   anything starting with a phrase in `NOISE_PREFIXES` (``my favorite``, ``my top 10``,
   ``favourite songs``), empty tags, and tags longer than `MAX_TAG_LENGTH` characters
   (sentences, not tags). Years and decades (``1998``, ``90s``) are kept: they say
   something about the sound of a record.

A vibe typed by a person goes through the same steps 1-3 (`vibe_candidates`, `match_vibe`),
so ``Lo-Fi`` in a vibe finds the tag ``lo fi``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container, Iterable, Sequence

MAX_TAG_LENGTH = 64

# Spellings that run two words together, split into the canonical words.
JOINED: dict[str, str] = {
    "lofi": "lo fi",
    "hiphop": "hip hop",
    "triphop": "trip hop",
    "postrock": "post rock",
    "postpunk": "post punk",
    "postmetal": "post metal",
    "synthpop": "synth pop",
    "synthwave": "synth wave",
    "chillout": "chill out",
    "chillwave": "chill wave",
    "dreampop": "dream pop",
    "rnb": "r and b",
    "dnb": "drum and bass",
}

# Tags about the listener or the record collection, not the sound (canonical forms).
NOISE_TAGS: frozenset[str] = frozenset(
    {
        "seen live",
        "favourites",
        "favorites",
        "favourite",
        "favorite",
        "fav",
        "favs",
        "faves",
        "albums i own",
        "albums i have",
        "owned",
        "awesome",
        "amazing",
        "love",
        "loved",
        "love it",
        "best",
        "cool",
        "good",
        "great",
        "check out",
        "to listen",
        "wishlist",
        "spotify",
        "vinyl",
    }
)
# Tags starting with these words are about the listener too ("my favorite", "my top 10").
NOISE_PREFIXES: tuple[str, ...] = ("my ", "favourite ", "favorite ", "songs i ", "albums i ")

# Words of a vibe that name no sound: dropped when they stand alone (they may still sit
# inside a longer matched tag, as "and" does in "drum and bass").
STOP_WORDS: frozenset[str] = frozenset(
    {
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "for",
        "to",
        "with",
        "in",
        "on",
        "at",
        "by",
        "some",
        "something",
        "me",
        "my",
        "i",
        "play",
        "want",
        "like",
        "really",
        "very",
        "kind",
        "sort",
        "bit",
        "music",
        "song",
        "songs",
        "track",
        "tracks",
        "vibe",
        "vibes",
        "mood",
        "stuff",
        "please",
    }
)

_APOSTROPHES = re.compile(r"['’‘`´]")
_SEPARATORS = re.compile(r"[\W_]+")


def _words(text: str) -> list[str]:
    """Steps 1-3 of the rule: the canonical words of `text`."""
    decomposed = unicodedata.normalize("NFKD", text)
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    folded = _APOSTROPHES.sub("", folded).replace("&", " and ").replace("+", " and ")
    words: list[str] = []
    for word in _SEPARATORS.sub(" ", folded).split():
        words.extend(JOINED.get(word, word).split())
    # A lone "n" between two words is an abbreviated "and" ("rock n roll").
    return ["and" if w == "n" and 0 < i < len(words) - 1 else w for i, w in enumerate(words)]


def normalize_tag(name: str) -> str | None:
    """The canonical form of a tag, or None when it says nothing about the sound (see module doc)."""
    canonical = " ".join(_words(name))
    if not canonical or len(canonical) > MAX_TAG_LENGTH or canonical in NOISE_TAGS:
        return None
    if canonical.startswith(NOISE_PREFIXES):
        return None
    return canonical


def normalize_tags(tags: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Normalise (name, weight) pairs: noise dropped, spellings of one tag merged at their
    highest weight (not the sum: Last.fm weights are 0..100 relative to the track's top tag);
    heaviest first, then by name."""
    merged: dict[str, int] = {}
    for name, weight in tags:
        canonical = normalize_tag(name)
        if canonical is not None:
            merged[canonical] = max(weight, merged.get(canonical, weight))
    return sorted(merged.items(), key=lambda item: (-item[1], item[0]))


def vibe_candidates(text: str) -> list[str]:
    """The tags a vibe could mean, in the order to try them: the whole phrase first, then
    shorter runs of its words (longest first, left to right), then single words.

    A run may not start or end with a stop word, and stop words alone are dropped;
    noise tags are never candidates. ``"chill ambient lo-fi"`` gives
    ``["chill ambient lo fi", "chill ambient lo", "ambient lo fi", "chill ambient",
    "ambient lo", "lo fi", "chill", "ambient", "lo", "fi"]``.
    """
    words = _words(text)
    seen: set[str] = set()
    out: list[str] = []
    for size in range(len(words), 0, -1):
        for start in range(len(words) - size + 1):
            run = words[start : start + size]
            if run[0] in STOP_WORDS or run[-1] in STOP_WORDS:
                continue
            candidate = normalize_tag(" ".join(run))
            if candidate is not None and candidate not in seen:
                seen.add(candidate)
                out.append(candidate)
    return out


def match_vibe(text: str, known: Container[str]) -> list[str]:
    """The known tags a vibe names: the whole phrase when it is a tag (``heavy metal``),
    otherwise, left to right, the longest run of words at each place that is a known tag.

    `known` holds canonical tags (e.g. the library's). ``"chill lo-fi beats"`` with tags
    ``chill``, ``lo fi`` and ``lo`` known gives ``["chill", "lo fi"]``; words that name
    no known tag are skipped.
    """
    words = _words(text)
    whole = normalize_tag(" ".join(words))
    if whole is not None and whole not in STOP_WORDS and whole in known:
        return [whole]
    matched: list[str] = []
    i = 0
    while i < len(words):
        for end in range(len(words), i, -1):
            run = words[i:end]
            if run[-1] in STOP_WORDS or run[0] in STOP_WORDS:
                continue
            tag = normalize_tag(" ".join(run))
            if tag is not None and tag in known:
                if tag not in matched:
                    matched.append(tag)
                i = end
                break
        else:
            i += 1
    return matched


def lookup_tags(text: str, matched: Sequence[str], *, limit: int = 5) -> list[str]:
    """The tags whose Last.fm charts (`tag.getTopTracks`) could grow the library toward a vibe:
    its longest phrase (``dark jazz``), then the tags it matched, and, when it matched none,
    its single words of three letters or more; at most `limit`, without repeats."""
    candidates = vibe_candidates(text)
    wanted = candidates[:1] + list(matched)
    if not matched:
        wanted += [c for c in candidates if " " not in c and len(c) >= 3]
    return list(dict.fromkeys(wanted))[:limit]
