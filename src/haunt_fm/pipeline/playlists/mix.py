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
keeps every artist rule is taken — at this place, or at an earlier one where the places after
it still keep the rules (a better track moved up rather than a worse one let in) — else the
other side's; failing both, the best that keeps
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

from haunt_fm.pipeline.recommendations.variety import WINDOW, crowded

Kind = Literal["known", "new"]
MAX_ARTIST_RUN = 2
# How strict a place is about artists: 0 = no repeat and 2-in-10, 1 = no repeat, 2 = no three in a row.
STRICT, NO_REPEAT, NO_THREE = 0, 1, 2
# A better track that can't take the next place may move up this many places (and this many of
# the best such tracks are tried per place), so a playlist is not filled with worse tracks where
# reordering the better ones keeps the artist rules.
MOVE_UP = 10
MOVE_TRIES = 10


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


class _Arrangement:
    """The list so far, the level each place was filled at, and the artists queued before it."""

    def __init__(self, after: Sequence[str]) -> None:
        self.after = list(after)
        self.chosen: list[Candidate] = []
        self.levels: list[int] = []
        self.seen: set[int] = set()

    def artists(self) -> list[str]:
        return self.after + [c.artist_key for c in self.chosen]

    def place(self, candidate: Candidate, level: int, at: int | None = None) -> None:
        at = len(self.chosen) if at is None else at
        self.chosen.insert(at, candidate)
        self.levels.insert(at, level)
        self.seen.add(candidate.track_id)

    def earlier_place(self, candidate: Candidate, level: int) -> int | None:
        """Where `candidate`, which can't go last, fits up to MOVE_UP places earlier: every place
        from there on still keeps the rules it was filled under (a better track moved up rather
        than a worse one let in). The rules look back at most WINDOW - 1 places, so only the
        places up to that far after the insertion can change their verdict."""
        end = len(self.chosen)
        for at in range(end - 1, max(-1, end - 1 - MOVE_UP), -1):
            trial = [*self.chosen[:at], candidate, *self.chosen[at:]]
            levels = [*self.levels[:at], level, *self.levels[at:]]
            keys = self.after + [c.artist_key for c in trial]
            offset = len(self.after)
            checked = range(at, min(len(trial), at + WINDOW))
            if all(_allowed(trial[p], keys[: offset + p], levels[p]) for p in checked):
                return at
        return None


def _take(
    pool: list[Candidate], arrangement: _Arrangement, level: int, *, move_up: bool
) -> tuple[Candidate, int | None] | None:
    """The pool's best track that can take the next place, or (`move_up`) an earlier one:
    (track, where)."""
    artists = arrangement.artists()
    moves_tried = 0 if move_up else MOVE_TRIES
    for i, candidate in enumerate(pool):
        if candidate.track_id in arrangement.seen:
            continue
        at: int | None = None
        if not _allowed(candidate, artists, level):
            if moves_tried == MOVE_TRIES:
                continue
            moves_tried += 1
            at = arrangement.earlier_place(candidate, level)
            if at is None:
                continue
        del pool[i]
        return candidate, at
    return None


def _arrange(
    known: list[Candidate], new: list[Candidate], kinds: list[Kind], strictest: int, after: Sequence[str]
) -> list[Candidate]:
    pools: dict[Kind, list[Candidate]] = {"known": list(known), "new": list(new)}
    arrangement = _Arrangement(after)
    for kind in kinds:
        other: Kind = "new" if kind == "known" else "known"
        for level in range(strictest, NO_THREE + 1):
            # Tracks move up only under the arrangement's own rules: a rule relaxed for one place
            # must not pull tracks forward past places that keep it.
            move_up = level == strictest
            pick = _take(pools[kind], arrangement, level, move_up=move_up) or _take(
                pools[other], arrangement, level, move_up=move_up
            )
            if pick is not None:
                arrangement.place(pick[0], level, at=pick[1])
                break
        else:
            break
    return arrangement.chosen


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
