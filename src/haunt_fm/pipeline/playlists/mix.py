"""Mixing known favourites with discoveries: pure functions, no I/O.

Rules, in order of precedence:
1. No track twice, and never more than two tracks by one (normalised) artist in a row.
2. Artists spread out as far as the candidates allow: never one artist twice in a row, and
   at most 2 of any 10 consecutive places by one artist, whenever another artist can take
   the place (`recommendations.variety`).
3. Known favourites take round(total x known_pct / 100) places (half up); when either side
   has too few candidates the other side fills in.
4. The known places are spread evenly through the playlist (Bresenham: each known track
   sits in the middle of its share of the list), never bunched at the start.
Each side is consumed best first. For each place the best candidate of the slot's side that
keeps every artist rule is taken, else the other side's; failing both, the best that keeps
rules 1 and the no-twice-in-a-row part of 2, then the best that keeps rule 1. When rule 1
blocks both sides the playlist ends there (shorter rather than breaking it). Spreading one
artist's tracks early can strand the rest of them at the end, so when the playlist ends
short it is arranged again without the 2-in-10 part (and then with rule 1 alone), and the
longest arrangement wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from haunt_fm.pipeline.recommendations.variety import crowded

Kind = Literal["known", "new"]
MAX_ARTIST_RUN = 2
# How strict a place is about artists: 0 = no repeat and 2-in-10, 1 = no repeat, 2 = no three in a row.
STRICT, NO_REPEAT, NO_THREE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Candidate:
    track_id: int
    title: str
    artist: str
    album: str | None
    artist_key: str
    kind: Kind
    score: float | None


def known_share(total: int, known_pct: float) -> int:
    """How many of `total` places known favourites should take (rounded half up)."""
    return min(total, int(total * known_pct / 100 + 0.5))


def plan_counts(*, total: int, known_pct: float, known_available: int, new_available: int) -> tuple[int, int]:
    """(known, new) counts: the asked-for share, each side filling in for the other when short."""
    known = min(known_share(total, known_pct), known_available)
    new = min(total - known, new_available)
    known = min(total - new, known_available)
    return known, new


def slot_kinds(known: int, new: int) -> list[Kind]:
    """`known + new` slots with the known ones spread evenly (each centred in its share)."""
    total = known + new
    kinds: list[Kind] = []
    placed = 0
    for i in range(total):
        # Known slots so far after slot i: round((i + 1) * known / total), in integers.
        due = ((i + 1) * 2 * known + total) // (2 * total)
        if due > placed:
            kinds.append("known")
            placed = due
        else:
            kinds.append("new")
    return kinds


def _allowed(candidate: Candidate, artists: Sequence[str], level: int) -> bool:
    recent = artists[-MAX_ARTIST_RUN:]
    if len(recent) == MAX_ARTIST_RUN and all(a == candidate.artist_key for a in recent):
        return False
    if level >= NO_THREE:
        return True
    if artists and artists[-1] == candidate.artist_key:
        return False
    return level >= NO_REPEAT or not crowded(candidate.artist_key, list(artists))


def _take(pool: list[Candidate], artists: Sequence[str], seen: set[int], level: int) -> Candidate | None:
    for i, candidate in enumerate(pool):
        if candidate.track_id in seen:
            continue
        if _allowed(candidate, artists, level):
            del pool[i]
            return candidate
    return None


def _arrange(
    known: list[Candidate], new: list[Candidate], kinds: list[Kind], strictest: int, after: Sequence[str]
) -> list[Candidate]:
    pools: dict[Kind, list[Candidate]] = {"known": list(known), "new": list(new)}
    chosen: list[Candidate] = []
    # The artists before each place: those queued before this list, then the list's own.
    artists = list(after)
    seen: set[int] = set()
    for kind in kinds:
        other: Kind = "new" if kind == "known" else "known"
        pick = None
        for level in range(strictest, NO_THREE + 1):
            pick = _take(pools[kind], artists, seen, level) or _take(pools[other], artists, seen, level)
            if pick is not None:
                break
        if pick is None:
            break
        chosen.append(pick)
        artists.append(pick.artist_key)
        seen.add(pick.track_id)
    return chosen


def interleave(
    *,
    known: Iterable[Candidate],
    new: Iterable[Candidate],
    total: int,
    known_pct: float,
    after: Sequence[str] = (),
) -> list[Candidate]:
    """The playlist: up to `total` candidates, known favourites spread among the discoveries.

    `after`: artist keys of the tracks already queued before this list (a radio's next batch),
    oldest first, so that the artist rules hold across the join.
    """
    known_pool, new_pool = _unique(known), _unique(new)
    k, n = plan_counts(
        total=total, known_pct=known_pct, known_available=len(known_pool), new_available=len(new_pool)
    )
    kinds = slot_kinds(k, n)
    best: list[Candidate] = []
    for strictest in (STRICT, NO_REPEAT, NO_THREE):
        chosen = _arrange(known_pool, new_pool, kinds, strictest, after)
        if len(chosen) > len(best):
            best = chosen
        if len(best) == len(kinds):
            break
    return best


def _unique(candidates: Iterable[Candidate]) -> list[Candidate]:
    out: list[Candidate] = []
    seen: set[int] = set()
    for c in candidates:
        if c.track_id not in seen:
            seen.add(c.track_id)
            out.append(c)
    return out
