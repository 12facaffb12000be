"""Names as people say them: "the kitchen", "Kids Room speaker", "Me" -> the thing they mean.

Matching goes from strict to loose and stops at the first step that finds anything: the name
as written (case and spacing aside), then the spoken form (accents, punctuation, a leading
"the"/"my" and a trailing "speaker"/"player" dropped; an entity id read as its words, without
Home Assistant's `_2` suffix), then whole words of one inside the other ("kids" in "kids room"),
then a close spelling (difflib). A step that finds two different things is ambiguous: the
caller answers with the choices instead of guessing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from haunt_fm.pipeline.tracks.identity import normalize_artist

T = TypeVar("T")

ENTITY_RE = re.compile(r"^media_player\.[a-z0-9_]+$")
_LEADING = ("the", "my", "our")
_TRAILING = ("speaker", "speakers", "player", "players")
# difflib's ratio: 0.8 lets "kitchin" find "kitchen" and keeps "kids" from "kitchen".
CLOSE_ENOUGH = 0.8


class Ambiguous(Exception):
    """More than one thing answers to the name."""

    def __init__(self, matches: Sequence[object]) -> None:
        super().__init__(f"{len(matches)} matches")
        self.matches = list(matches)


def exact_key(text: str) -> str:
    """Case and spacing aside: how a name is stored and compared by the webhook."""
    return " ".join(text.split()).casefold()


def spoken_key(text: str, *, fillers: bool = True) -> str:
    """The words of a name as said aloud; `fillers` also drops "my"/"our" and "speaker"/"player"."""
    text = text.strip()
    if ENTITY_RE.match(text.lower()):
        # media_player.kids_room_speaker_2 -> "kids room speaker": Music Assistant's players
        # are the `_2` twins of the speakers' own entities.
        text = re.sub(r"_\d+$", "", text.split(".", 1)[1]).replace("_", " ")
    # The track-identity artist rule already folds case, accents, "&" and punctuation and
    # drops a leading "The": exactly what a spoken name needs too.
    words = normalize_artist(text).split()
    if fillers:
        while len(words) > 1 and words[0] in _LEADING:
            words.pop(0)
        while len(words) > 1 and words[-1] in _TRAILING:
            words.pop()
    return " ".join(words)


def pick(
    said: str, options: Sequence[T], aliases: Callable[[T], Iterable[str]], *, fillers: bool = True
) -> T | None:
    """The one option `said` names; None when none does; `Ambiguous` when several do."""
    keyed = [(option, [a for a in aliases(option) if a and a.strip()]) for option in options]

    def settle(found: list[T]) -> T | None:
        distinct: list[T] = []
        for option in found:
            if not any(option is seen for seen in distinct):
                distinct.append(option)
        if len(distinct) > 1:
            raise Ambiguous(distinct)
        return distinct[0] if distinct else None

    wanted = exact_key(said)
    if (hit := settle([o for o, names in keyed if any(exact_key(n) == wanted for n in names)])) is not None:
        return hit
    spoken = spoken_key(said, fillers=fillers)
    if not spoken:
        return None
    spoken_of = [(o, {spoken_key(n, fillers=fillers) for n in names} - {""}) for o, names in keyed]
    if (hit := settle([o for o, keys in spoken_of if spoken in keys])) is not None:
        return hit
    words = set(spoken.split())
    inside = [
        o for o, keys in spoken_of if any(words <= set(k.split()) or set(k.split()) <= words for k in keys)
    ]
    if (hit := settle(inside)) is not None:
        return hit
    every_key = [k for _, keys in spoken_of for k in keys]
    close = set(difflib.get_close_matches(spoken, every_key, n=5, cutoff=CLOSE_ENOUGH))
    return settle([o for o, keys in spoken_of if keys & close])
