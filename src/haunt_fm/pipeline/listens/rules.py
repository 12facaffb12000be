"""Listen rules that several stages share (skips feed tastes, radios and the dashboard).

A listen is **skipped** when the next listen on the same speaker started within
min(30 s, half the track's duration) of it. The duration is the webhook's `duration_s`, else
the track's known duration; when neither is known the window is 30 s.
"""

from __future__ import annotations

from datetime import datetime

SKIP_MAX_SECONDS = 30.0


def skip_window_seconds(duration_s: float | None) -> float:
    """How soon after a listen started the next one must start for it to count as skipped."""
    if duration_s is None or duration_s <= 0:
        return SKIP_MAX_SECONDS
    return min(SKIP_MAX_SECONDS, duration_s / 2.0)


def is_skip(*, started_at: datetime, duration_s: float | None, next_started_at: datetime) -> bool:
    """Whether a listen that started at `started_at` was cut short by the next at `next_started_at`."""
    gap = (next_started_at - started_at).total_seconds()
    return 0 <= gap < skip_window_seconds(duration_s)
