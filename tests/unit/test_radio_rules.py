"""The radio's rules on their own: heard, skipped, outside, keeping ahead, silence, steering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from haunt_fm.pipeline.radio import rules
from haunt_fm.pipeline.radio.rules import Listen, TrackState
from haunt_fm.pipeline.recommendations.service import Direction, Query, steer_away

T0 = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)


def queued(n: int, *, failed: tuple[int, ...] = (), sent_at: datetime | None = T0) -> list[TrackState]:
    """Tracks 1..n (track id 100 + position), three minutes long."""
    return [
        TrackState(
            position=p,
            track_id=100 + p,
            send_status="failed" if p in failed else "queued",
            duration_s=180.0,
            sent_at=sent_at,
        )
        for p in range(1, n + 1)
    ]


def heard(track_id: int, seconds: float, *, event: int | None = None, duration: float | None = 180) -> Listen:
    return Listen(
        event_id=event or int(seconds) + 1,
        track_id=track_id,
        played_at=T0 + timedelta(seconds=seconds),
        duration_s=duration,
        title=f"t{track_id}",
        artist="a",
    )


def test_listens_of_its_tracks_are_heard_and_a_quick_next_is_a_skip() -> None:
    tracks = queued(5)
    reading = rules.read_listens(
        tracks=tracks, listens=[heard(101, 0), heard(102, 12), heard(103, 200)], cursor=7
    )
    assert set(reading.heard) == {1, 2, 3} and reading.outside is None
    assert reading.skipped == {1}  # 12 s < min(30, 90)
    assert reading.cursor == 201 and reading.last_heard_at == T0 + timedelta(seconds=200)
    after = rules.apply(tracks, reading)
    assert [t.skipped for t in after] == [True, False, False, False, False]
    assert rules.now_playing(after) == after[2]
    assert [rules.state_of(t, after[2]) for t in after] == [
        "skipped",
        "played",
        "playing",
        "upcoming",
        "upcoming",
    ]


def test_the_skip_window_uses_the_reported_duration_and_carries_over_between_readings() -> None:
    tracks = queued(4)
    # A 16-second track reported: half of it is 8 s, so a next listen after 9 s is no skip.
    first = rules.read_listens(tracks=tracks, listens=[heard(101, 0, duration=16)], cursor=0)
    tracks = rules.apply(tracks, first)
    second = rules.read_listens(tracks=tracks, listens=[heard(102, 9)], cursor=first.cursor)
    assert second.skipped == set()
    tracks = rules.apply(tracks, second)
    third = rules.read_listens(tracks=tracks, listens=[heard(103, 20)], cursor=second.cursor)
    assert third.skipped == {2}  # 11 s after a 180 s track
    # The same track again (the listener went back) is not a skip of it.
    tracks = rules.apply(tracks, third)
    again = rules.read_listens(tracks=tracks, listens=[heard(103, 25)], cursor=third.cursor)
    assert again.skipped == set()


def test_a_track_it_did_not_queue_ends_it_unless_a_replaced_radio_queued_it() -> None:
    tracks = queued(3)
    reading = rules.read_listens(
        tracks=tracks, listens=[heard(101, 0), heard(999, 100), heard(102, 300)], cursor=0
    )
    assert reading.outside is not None and reading.outside.track_id == 999
    assert set(reading.heard) == {1}
    forgiven = rules.read_listens(
        tracks=tracks, listens=[heard(101, 0), heard(999, 100), heard(102, 300)], leftovers=[999], cursor=0
    )
    assert forgiven.outside is None and set(forgiven.heard) == {1, 2}
    # An outside track cut short the radio track before it.
    cut = rules.read_listens(tracks=tracks, listens=[heard(101, 0), heard(999, 5)], cursor=0)
    assert cut.skipped == {1}


def test_listens_are_read_in_the_order_they_started() -> None:
    tracks = queued(3)
    late = [heard(102, 200, event=9), heard(101, 0, event=10)]
    reading = rules.read_listens(tracks=tracks, listens=late, cursor=0)
    assert reading.skipped == set() and set(reading.heard) == {1, 2} and reading.cursor == 10
    assert rules.now_playing(rules.apply(tracks, reading)).position == 2  # type: ignore[union-attr]


def test_the_next_batch_is_due_when_one_of_the_last_three_plays() -> None:
    tracks = queued(6)
    assert not rules.needs_more(tracks)  # nothing heard yet
    for position, due in [(1, False), (3, False), (4, True), (6, True)]:
        reading = rules.read_listens(tracks=tracks, listens=[heard(100 + position, 0)], cursor=0)
        assert rules.needs_more(rules.apply(tracks, reading)) is due, position
    # Tracks Music Assistant could not find do not keep the radio ahead.
    tracks = queued(6, failed=(5, 6))
    reading = rules.read_listens(tracks=tracks, listens=[heard(102, 0)], cursor=0)
    after = rules.apply(tracks, reading)
    assert rules.needs_more(after) and [t.position for t in rules.upcoming(after)] == [3, 4]


def test_silence_is_longer_than_the_queued_tracks_could_last() -> None:
    tracks = queued(4)
    slack = timedelta(seconds=rules.SILENCE_SLACK_SECONDS)
    # Nothing heard: from when they were sent, all four at 180 s.
    assert (
        rules.silent_after(tracks, started_at=T0, last_heard_at=None) == T0 + timedelta(seconds=720) + slack
    )
    # Track 2 heard 10 minutes in: itself and two more from then.
    reading = rules.read_listens(tracks=tracks, listens=[heard(102, 600)], cursor=0)
    after = rules.apply(tracks, reading)
    heard_at = T0 + timedelta(seconds=600)
    assert (
        rules.silent_after(after, started_at=T0, last_heard_at=heard_at)
        == heard_at + timedelta(seconds=540) + slack
    )
    # Unknown durations count as DEFAULT_TRACK_SECONDS; nothing sent yet: no silence yet.
    unknown = [TrackState(position=1, track_id=1, send_status="queued", duration_s=None, sent_at=T0)]
    assert (
        rules.silent_after(unknown, started_at=T0, last_heard_at=None)
        == T0 + timedelta(seconds=rules.DEFAULT_TRACK_SECONDS) + slack
    )
    assert rules.silent_after(queued(2, sent_at=None), started_at=T0, last_heard_at=None) is None


def test_steering_moves_the_query_away_and_keeps_it_a_unit_vector() -> None:
    e0, e1, e2 = np.eye(3, dtype=np.float32)
    taste = e0
    skipped = (0.95 * e0 + 0.312 * e1).astype(np.float32)
    query = Query("taste", [Direction(taste, 1.0, 1.0, 0, None)])
    moved = steer_away(query, rules.STEER_BETA * skipped)
    assert abs(float(np.linalg.norm(moved.vector)) - 1.0) < 1e-6
    assert float(moved.vector @ skipped) < float(taste @ skipped)
    near_skip = (0.95 * e0 + 0.312 * e1) / np.linalg.norm(0.95 * e0 + 0.312 * e1)
    elsewhere = (0.90 * e0 + 0.436 * e2) / np.linalg.norm(0.90 * e0 + 0.436 * e2)
    assert float(taste @ near_skip) > float(taste @ elsewhere)
    assert float(moved.vector @ near_skip) < float(moved.vector @ elsewhere)
    assert [(d.weight, d.taste_share) for d in moved.directions] == [(1.0, 1.0)]
    # A vector that would cancel the query out leaves it as it was.
    same = steer_away(query, taste)
    assert np.array_equal(same.vector, taste)
