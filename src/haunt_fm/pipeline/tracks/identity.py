"""Track identity: the one rule that decides when two names are the same song.

The rule (documented in the README, "Track identity"):

1. Unicode NFKD, combining marks dropped (``Sigur Rós`` = ``Sigur Ros``), case folded.
2. ``&`` and ``+`` read as ``and``; apostrophes vanish (``Don't`` = ``Dont``); every
   other non-alphanumeric character is a space; runs of spaces collapse.
3. Artist: featured-artist credits are dropped (``X feat. Y``, ``X ft. Y``,
   ``X featuring Y``), and a leading ``The`` is ignored.
4. Title: featured-artist credits are dropped wherever they appear, and so is any
   version suffix, in brackets or after `` - ``, that names a *version of the same
   recording*: remaster(ed) [year], radio/single/album edit or version, live
   [at/from …], mono, stereo, explicit, clean, deluxe/anniversary/expanded edition,
   bonus track, demo-less "edit". Suffixes that name a *different recording* —
   remix, mix, acoustic, instrumental, cover, demo, reprise, part numbers — are kept,
   so different songs stay different.
5. When the rule would leave nothing (a band called ``!!!``), the case-folded original
   is used instead.

The identity key is ``norm_artist + U+001F + norm_title``.
"""

from __future__ import annotations

import re
import unicodedata

KEY_SEPARATOR = "\x1f"

# Words that mark a suffix as "another take of the same recording" (step 4).
_SAME_RECORDING = re.compile(
    r"""^(
        (\d{4}\s+)?(digital(ly)?\s+)?remaster(ed)?(\s+(version|edition|\d{4}))*(\s+\d{4})?
      | remaster(ed)?\s+\d{4}(\s+(version|edition))?
      | (radio|single|album|lp|original|clean|explicit|short|7\s*inch|7)\s+(edit|version|mix)
      | (radio\s+)?edit
      | live(\s+(at|from|in|on|version|recording)\b.*)?
      | (\d{4}\s+)?live(\s+version)?
      | mono(\s+(version|mix))?
      | stereo(\s+(version|mix))?
      | (\d{4}\s+)?(mono|stereo)\s+(remaster(ed)?|mix)(\s+\d{4})?
      | explicit | clean | dirty
      | ((\d+(st|nd|rd|th)\s+)?anniversary|deluxe|expanded|special|super\s+deluxe)
        (\s+(edition|version|remaster(ed)?))?.*
      | bonus\s+track
      | (feat|ft|featuring|with)\b.*
    )$""",
    re.VERBOSE,
)

_BRACKETS = re.compile(r"\s*[\(\[\{]([^\)\]\}]*)[\)\]\}]")
_FEAT_INLINE = re.compile(r"\s+(?:feat\.?|ft\.?|featuring)\s+.*$", re.IGNORECASE)
_FEAT_INLINE_TITLE = re.compile(r"\s+(?:feat\.?|ft\.?|featuring)\s+[^\(\[\-]*", re.IGNORECASE)
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


# Letters NFKD does not decompose into a base letter plus a mark.
_EXTRA_FOLDS = {
    ord(k): v
    for k, v in {
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ı": "i",
    }.items()
}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    stripped = stripped.translate(_EXTRA_FOLDS)
    return stripped.casefold()


def _clean(text: str) -> str:
    text = text.replace("&", " and ").replace("+", " and ")
    text = re.sub(r"['’‘`´]", "", text)
    return " ".join(_NON_ALNUM.sub(" ", text).split())


def _descriptor(segment: str) -> str:
    return " ".join(_NON_ALNUM.sub(" ", segment.replace("&", " and ")).split())


def normalize_artist(artist: str) -> str:
    """The artist part of a track's identity."""
    folded = _fold(artist).strip()
    without_feat = _FEAT_INLINE.sub("", folded)
    cleaned = _clean(without_feat)
    if cleaned.startswith("the ") and len(cleaned) > 4:
        cleaned = cleaned[4:]
    return cleaned or folded.strip()


def normalize_title(title: str) -> str:
    """The title part of a track's identity."""
    folded = _fold(title).strip()
    text = folded

    # Bracketed suffixes: drop those that name the same recording.
    def _drop_bracket(match: re.Match[str]) -> str:
        return "" if _SAME_RECORDING.match(_descriptor(match.group(1))) else match.group(0)

    text = _BRACKETS.sub(_drop_bracket, text)
    # " - Suffix" parts (Spotify / iTunes style), possibly several.
    while True:
        head, sep, tail = text.rpartition(" - ")
        if not sep or not head.strip():
            break
        if _SAME_RECORDING.match(_descriptor(tail)):
            text = head
        else:
            break
    text = _FEAT_INLINE_TITLE.sub("", text)
    cleaned = _clean(text)
    return cleaned or " ".join(folded.split())


def identity_key(artist: str, title: str) -> str:
    """`norm_artist + U+001F + norm_title`: equal keys mean the same song."""
    return normalize_artist(artist) + KEY_SEPARATOR + normalize_title(title)


def identity_params(*, title: str, artist: str) -> dict[str, str]:
    """The identity columns of a track (norm_artist, norm_title, norm_key) as query parameters."""
    norm_artist, norm_title = normalize_artist(artist), normalize_title(title)
    return {"norm_artist": norm_artist, "norm_title": norm_title, "norm_key": identity_key(artist, title)}
