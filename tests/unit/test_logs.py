"""A repeated warning is logged once, then counted."""

from __future__ import annotations

import logging

from haunt_fm.logs import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("haunt_fm.test", level, __file__, 1, message, (), None)


def test_identical_errors_collapse_into_one_with_a_count() -> None:
    clock = Clock()
    repeat = RepeatFilter(60, clock=clock)
    assert repeat.filter(_record("Last.fm rejected the API key."))
    clock.now = 5
    assert not repeat.filter(_record("Last.fm rejected the API key."))
    assert not repeat.filter(_record("Last.fm rejected the API key."))
    assert repeat.filter(_record("Something else went wrong."))  # a different message passes
    clock.now = 61
    again = _record("Last.fm rejected the API key.")
    assert repeat.filter(again)
    assert again.getMessage() == "Last.fm rejected the API key. (and 2 more time(s) like it in the last 60 s)"


def test_info_lines_are_never_collapsed() -> None:
    repeat = RepeatFilter(60, clock=Clock())
    assert all(repeat.filter(_record("embedding batch: 10 stored", logging.INFO)) for _ in range(3))
