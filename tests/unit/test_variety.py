"""Merging tastes' lists and spreading artists (pure functions)."""

from __future__ import annotations

import random
from typing import NamedTuple

from haunt_fm.pipeline.recommendations.variety import crowded, merge, shares


class Item(NamedTuple):
    track_id: int
    artist_key: str


def items(start: int, n: int, artist: str | None = None) -> list[Item]:
    return [Item(i, artist or f"a{i}") for i in range(start, start + n)]


def test_shares_follow_the_weights() -> None:
    assert shares([0.5, 0.5], 10) == [5, 5]
    assert shares([2 / 3, 1 / 3], 9) == [6, 3]
    assert shares([0.6, 0.3, 0.1], 10) == [6, 3, 1]
    assert sum(shares([0.37, 0.33, 0.2, 0.1], 50)) == 50


def test_interleaved_by_weight_not_in_blocks() -> None:
    a, b = items(0, 20), items(100, 20)
    merged = merge([a, b], [2 / 3, 1 / 3], 9)
    assert "".join("ab"[i] for i, _ in merged.items) == "abaabaaba"
    assert [it.track_id for i, it in merged.items if i == 0] == list(range(6))
    assert not merged.gave_way


def test_a_track_found_twice_counts_once_and_a_dry_list_leaves_its_places() -> None:
    a = items(0, 10)
    b = [Item(0, "a0"), Item(1, "a1"), *items(100, 2)]
    merged = merge([a, b], [0.5, 0.5], 8)
    got = [it.track_id for _, it in merged.items]
    assert len(got) == len(set(got)) == 8
    assert [it.track_id for i, it in merged.items if i == 1] == [1, 100, 101]
    assert [i for i, _ in merged.items][-2:] == [0, 0]  # b ran dry: a fills in


def test_artists_hold_at_most_two_of_ten_places() -> None:
    crowd = [Item(i, "crowd") for i in range(6)]
    merged = merge([[*crowd, *items(10, 20)]], [1.0], 20)
    keys = [it.artist_key for _, it in merged.items]
    assert keys[:3] == ["crowd", "crowd", "a10"]
    assert all(keys[i : i + 10].count("crowd") <= 2 for i in range(len(keys)))
    assert not merged.gave_way
    # Only one artist left: the rule gives way, and says so.
    merged = merge([[*crowd, *items(10, 2)]], [1.0], 8)
    assert len(merged.items) == 8 and merged.gave_way


def test_random_lists_keep_every_rule() -> None:
    rng = random.Random(3)
    for _ in range(200):
        k = rng.randint(1, 6)
        artists = [f"x{i}" for i in range(rng.randint(1, 12))]
        lists = [
            [Item(rng.randint(0, 80), rng.choice(artists)) for _ in range(rng.randint(0, 40))]
            for _ in range(k)
        ]
        weights = [rng.uniform(0.05, 1.0) for _ in range(k)]
        limit = rng.randint(1, 50)
        merged = merge(lists, weights, limit)
        got = [it.track_id for _, it in merged.items]
        assert len(got) == len(set(got)) == min(limit, len({i.track_id for li in lists for i in li}))
        keys = [it.artist_key for _, it in merged.items]
        if not merged.gave_way:
            assert all(not crowded(keys[p], keys[:p]) for p in range(len(keys)))
