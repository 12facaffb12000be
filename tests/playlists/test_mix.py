"""The mixing rules on their own: counts, even spread, artist runs, fill-in."""

from __future__ import annotations

import random

import pytest

from haunt_fm.pipeline.playlists.mix import Candidate, interleave, known_share, plan_counts, slot_kinds


def cand(tid: int, kind: str, artist: str | None = None) -> Candidate:
    a = artist or f"{kind}-{tid}"
    return Candidate(tid, f"t{tid}", a, None, a.casefold(), kind, 1.0)  # type: ignore[arg-type]


def runs_ok(chosen: list[Candidate]) -> bool:
    keys = [c.artist_key for c in chosen]
    return all(not (keys[i] == keys[i - 1] == keys[i - 2]) for i in range(2, len(keys)))


@pytest.mark.parametrize(
    ("total", "pct", "expected"), [(20, 30, 6), (15, 30, 5), (10, 25, 3), (1, 30, 0), (1, 50, 1), (7, 100, 7)]
)
def test_known_share_rounds_half_up(total: int, pct: float, expected: int) -> None:
    assert known_share(total, pct) == expected


def test_plan_counts_fill_in() -> None:
    assert plan_counts(total=20, known_pct=30, known_available=50, new_available=50) == (6, 14)
    assert plan_counts(total=20, known_pct=30, known_available=2, new_available=50) == (2, 18)
    assert plan_counts(total=20, known_pct=30, known_available=50, new_available=3) == (17, 3)
    assert plan_counts(total=20, known_pct=30, known_available=4, new_available=3) == (4, 3)
    assert plan_counts(total=20, known_pct=0, known_available=50, new_available=0) == (20, 0)


def test_slots_spread_evenly() -> None:
    assert "".join(k[0] for k in slot_kinds(6, 14)) == "nknnknnnknnknnknnnkn"
    for total in range(1, 41):
        for known in range(total + 1):
            kinds = slot_kinds(known, total - known)
            assert len(kinds) == total and kinds.count("known") == known
            prefix = [0]
            for k in kinds:
                prefix.append(prefix[-1] + (k == "known"))
            # Every stretch of the list holds its fair share of known slots, less than one off.
            for start in range(total):
                for end in range(start + 1, total + 1):
                    inside = prefix[end] - prefix[start]
                    assert abs(inside - (end - start) * known / total) < 1.0, (known, total, start, end)


def test_interleave_ratio_order_and_no_duplicates() -> None:
    known = [cand(i, "known") for i in range(1, 31)]
    new = [cand(i, "new") for i in range(100, 150)]
    # A duplicate inside a side and one across the sides are used once at most.
    chosen = interleave(known=known, new=new, total=20, known_pct=30)
    assert "".join(c.kind[0] for c in chosen) == "nknnknnnknnknnknnnkn"
    assert [c.track_id for c in chosen if c.kind == "known"] == [1, 2, 3, 4, 5, 6]
    assert [c.track_id for c in chosen if c.kind == "new"] == list(range(100, 114))
    # A duplicate inside a side, and a track on both sides, are used once.
    chosen = interleave(known=[*known, known[0]], new=[cand(2, "new"), *new], total=20, known_pct=30)
    ids = [c.track_id for c in chosen]
    assert len(ids) == 20 and len(set(ids)) == 20 and ids[0] == 2
    assert [c.track_id for c in chosen if c.kind == "known"] == [1, 3, 4, 5, 6, 7]


def test_one_artist_never_twice_in_a_row_when_another_can_play() -> None:
    same = [cand(i, "new", "Same") for i in range(1, 7)]
    others = [cand(i, "new") for i in range(7, 11)]
    # Six by one artist among ten places cannot keep 2 in 10, but they alternate as long as the
    # others last, and the last two pair up (never three).
    chosen = interleave(known=[], new=[*same, *others], total=10, known_pct=0)
    assert [c.track_id for c in chosen] == [1, 7, 2, 8, 3, 9, 4, 10, 5, 6]
    # With enough other artists, one artist gets at most 2 of any 10 places.
    many = [cand(i, "new") for i in range(7, 30)]
    chosen = interleave(known=[], new=[*same, *many], total=20, known_pct=0)
    assert [c.track_id for c in chosen][:3] == [1, 7, 2]
    assert window_ok(chosen)
    assert [c.track_id for c in chosen if c.artist_key == "same"] == [1, 2, 3, 4]
    # A new slot whose side is all one artist borrows a known track.
    chosen = interleave(
        known=[cand(50, "known"), cand(51, "known")],
        new=[cand(i, "new", "Same") for i in range(1, 7)],
        total=6,
        known_pct=0,
    )
    assert [c.track_id for c in chosen] == [1, 50, 2, 51, 3, 4]
    # Nothing allowed is left: the playlist ends rather than play three in a row.
    chosen = interleave(known=[], new=[cand(i, "new", "Same") for i in range(1, 7)], total=6, known_pct=0)
    assert [c.track_id for c in chosen] == [1, 2]


def window_ok(chosen: list[Candidate]) -> bool:
    keys = [c.artist_key for c in chosen]
    return all(keys[i : i + 10].count(k) <= 2 for i in range(len(keys)) for k in set(keys[i : i + 10]))


def repeats_ok(chosen: list[Candidate]) -> bool:
    keys = [c.artist_key for c in chosen]
    return all(keys[i] != keys[i - 1] for i in range(1, len(keys)))


def test_random_pools_always_keep_the_rules() -> None:
    rng = random.Random(5)
    for _ in range(300):
        artists = [f"a{i}" for i in range(rng.randint(1, 6))]
        known = [cand(i, "known", rng.choice(artists)) for i in range(rng.randint(0, 30))]
        new = [cand(1000 + i, "new", rng.choice(artists)) for i in range(rng.randint(0, 30))]
        total, pct = rng.randint(1, 40), rng.choice([0, 10, 30, 50, 100])
        chosen = interleave(known=known, new=new, total=total, known_pct=pct)
        ids = [c.track_id for c in chosen]
        assert len(ids) == len(set(ids)) <= total
        assert runs_ok(chosen)
        if len(artists) == 1:
            assert len(chosen) == min(2, total, len(known) + len(new))


def test_the_artist_rule_holds_across_the_join_with_what_came_before() -> None:
    # A radio's next batch: the last two queued tracks were by "a"; its best pick is by "a" too.
    new = [cand(1, "new", "A"), cand(2, "new", "B"), cand(3, "new", "C")]
    chosen = interleave(known=[], new=new, total=3, known_pct=0, after=["x", "a", "a"])
    # Not twice in a row, and "a" already holds 2 of the last 10 places: it goes last.
    assert [c.track_id for c in chosen] == [2, 3, 1]
    # Only the last nine places before the list count.
    chosen = interleave(known=[], new=new, total=3, known_pct=0, after=["a", "a"] + ["x"] * 8)
    assert [c.track_id for c in chosen] == [1, 2, 3]


def test_artists_spread_whenever_the_pools_allow() -> None:
    rng = random.Random(11)
    for _ in range(200):
        # Six artists with plenty of tracks each can always fill a window of 10 two at a time.
        artists = [f"a{i}" for i in range(rng.randint(6, 9))]
        known = [cand(i, "known", rng.choice(artists[:3])) for i in range(rng.randint(10, 40))]
        new = [cand(1000 + i, "new", artists[i % len(artists)]) for i in range(60)]
        rng.shuffle(new)
        total, pct = rng.randint(10, 40), rng.choice([0, 10, 30, 50])
        chosen = interleave(known=known, new=new, total=total, known_pct=pct)
        assert len(chosen) == total
        assert repeats_ok(chosen) and window_ok(chosen)
    # Two artists only: never twice in a row while both have tracks left.
    known = [cand(i, "known", "x") for i in range(10)]
    new = [cand(100 + i, "new", "y") for i in range(10)]
    chosen = interleave(known=known, new=new, total=20, known_pct=30)
    assert len(chosen) == 20 and repeats_ok(chosen)


def test_a_better_track_moves_up_rather_than_a_worse_one_coming_in() -> None:
    # The four best are by three artists, two by "a": they fit as a, b, c, a... in some order;
    # the fifth (another artist, far worse) must not take the last place instead.
    new = [cand(1, "new", "C"), cand(2, "new", "B"), cand(3, "new", "A"), cand(4, "new", "A")]
    new.append(cand(5, "new", "Z"))
    chosen = interleave(known=[], new=new, total=4, known_pct=0)
    assert {c.track_id for c in chosen} == {1, 2, 3, 4}
    assert repeats_ok(chosen) and window_ok(chosen)
    # The list up to the blocked place stays as it was, the "a" moved up in between.
    assert [c.track_id for c in chosen] == [1, 4, 2, 3]
