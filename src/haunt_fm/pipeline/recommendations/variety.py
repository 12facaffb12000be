"""Variety rules for ranked lists: pure functions, no I/O (recommendations and playlists use them).

- **Artists spread out**: at most `MAX_PER_WINDOW` (2) of any `WINDOW` (10) consecutive places
  go to one artist (normalised name) while another artist can take the place; a track that
  would crowd its artist waits for a later place.
- **Tastes share a list**: ranked lists (one per taste) are merged so that each gets a share of
  the places proportional to its weight, interleaved rather than in blocks: the next place
  goes to the list with the lowest (taken + 0.5) / weight (Sainte-Laguë order; ties to the
  heavier taste). A track two lists found counts for the first that places it; a list that
  runs dry leaves its places to the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

WINDOW = 10
MAX_PER_WINDOW = 2


class Ranked(Protocol):
    @property
    def track_id(self) -> int: ...

    @property
    def artist_key(self) -> str: ...


T = TypeVar("T", bound=Ranked)


def crowded(artist_key: str, placed: Sequence[str]) -> bool:
    """Whether one more place for `artist_key` after `placed` would give it over 2 of 10 places."""
    recent = placed[max(0, len(placed) - (WINDOW - 1)) :]
    return sum(1 for a in recent if a == artist_key) >= MAX_PER_WINDOW


@dataclass(frozen=True, slots=True)
class Merged(Generic[T]):
    """The merged list as (index of the list that supplied it, item) pairs."""

    items: list[tuple[int, T]]
    # The artist rule had to give way somewhere: every track left in the lists was by a
    # crowded artist (a longer list might have had another).
    gave_way: bool


def merge(lists: Sequence[Sequence[T]], weights: Sequence[float], limit: int) -> Merged[T]:
    """Up to `limit` items from `lists` (each best first), shared by weight, artists spread out."""
    pending = [list(items) for items in lists]
    taken = [0] * len(lists)
    used: set[int] = set()
    placed: list[str] = []
    out: list[tuple[int, T]] = []
    gave_way = False
    while len(out) < limit:
        for queue in pending:
            while queue and queue[0].track_id in used:
                queue.pop(0)
        live = [i for i, queue in enumerate(pending) if queue]
        if not live:
            break
        turn = sorted(live, key=lambda i: ((taken[i] + 0.5) / max(weights[i], 1e-9), i))
        pick: tuple[int, int] | None = None
        for i in turn:
            for j, item in enumerate(pending[i]):
                if item.track_id not in used and not crowded(item.artist_key, placed):
                    pick = (i, j)
                    break
            if pick is not None:
                break
        if pick is None:
            gave_way = True
            pick = (turn[0], 0)
        i, j = pick
        item = pending[i].pop(j)
        used.add(item.track_id)
        placed.append(item.artist_key)
        taken[i] += 1
        out.append((i, item))
    return Merged(out, gave_way)


def shares(weights: Sequence[float], limit: int) -> list[int]:
    """How many of `limit` places each weight gets in Sainte-Laguë order (what `merge` aims for)."""
    counts = [0] * len(weights)
    for _ in range(limit):
        i = min(range(len(weights)), key=lambda k: ((counts[k] + 0.5) / max(weights[k], 1e-9), k))
        counts[i] += 1
    return counts
