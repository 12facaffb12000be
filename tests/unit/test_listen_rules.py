"""The skip rule, on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from haunt_fm.pipeline.listens.rules import is_skip, skip_window_seconds

T0 = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("duration", "window"),
    [(None, 30.0), (0, 30.0), (-1, 30.0), (200, 30.0), (60, 30.0), (40, 20.0), (10, 5.0)],
)
def test_window_is_half_the_duration_at_most_thirty_seconds(duration: float | None, window: float) -> None:
    assert skip_window_seconds(duration) == window


def test_a_listen_cut_short_is_a_skip_and_a_played_one_is_not() -> None:
    assert is_skip(started_at=T0, duration_s=240, next_started_at=T0 + timedelta(seconds=10))
    assert not is_skip(started_at=T0, duration_s=240, next_started_at=T0 + timedelta(seconds=30))
    assert is_skip(started_at=T0, duration_s=40, next_started_at=T0 + timedelta(seconds=19.9))
    assert not is_skip(started_at=T0, duration_s=40, next_started_at=T0 + timedelta(seconds=20))
    # Out of order (the next arrived with an earlier start): not a skip of this one.
    assert not is_skip(started_at=T0, duration_s=240, next_started_at=T0 - timedelta(seconds=5))
