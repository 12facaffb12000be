"""Mixing known favourites with discoveries: pure functions, no I/O.

Rules, in order of precedence:
1. No track twice, and never more than two tracks by one (normalised) artist in a row.
2. Known favourites take round(total x known_pct / 100) places (half up); when either side
   has too few candidates the other side fills in.
3. The known places are spread evenly through the playlist (Bresenham: each known track
   sits in the middle of its share of the list), never bunched at the start.
Each side is consumed best first. When the artist rule blocks a slot's side, the best
allowed candidate of the other side takes the slot; when it blocks both, the playlist
ends there (shorter rather than breaking the rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["known", "new"]
MAX_ARTIST_RUN = 2


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


def _allowed(candidate: Candidate, recent_artists: Sequence[str]) -> bool:
    recent = recent_artists[-MAX_ARTIST_RUN:]
    return len(recent) < MAX_ARTIST_RUN or any(a != candidate.artist_key for a in recent)


def _take(pool: list[Candidate], recent_artists: Sequence[str], seen: set[int]) -> Candidate | None:
    for i, candidate in enumerate(pool):
        if candidate.track_id in seen:
            continue
        if _allowed(candidate, recent_artists):
            del pool[i]
            return candidate
    return None


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
    oldest first, so that the artist rule holds across the join.
    """
    pools: dict[Kind, list[Candidate]] = {"known": _unique(known), "new": _unique(new)}
    k, n = plan_counts(
        total=total, known_pct=known_pct, known_available=len(pools["known"]), new_available=len(pools["new"])
    )
    chosen: list[Candidate] = []
    artists = list(after[-MAX_ARTIST_RUN:])
    seen: set[int] = set()
    for kind in slot_kinds(k, n):
        other: Kind = "new" if kind == "known" else "known"
        pick = _take(pools[kind], artists, seen) or _take(pools[other], artists, seen)
        if pick is None:
            break
        chosen.append(pick)
        artists.append(pick.artist_key)
        seen.add(pick.track_id)
    return chosen


def _unique(candidates: Iterable[Candidate]) -> list[Candidate]:
    out: list[Candidate] = []
    seen: set[int] = set()
    for c in candidates:
        if c.track_id not in seen:
            seen.add(c.track_id)
            out.append(c)
    return out
