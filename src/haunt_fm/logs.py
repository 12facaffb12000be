"""Logs a person can follow: the same warning or error repeated is logged once, then counted.

A wrong Last.fm key used to log the same sentence four times; an outage logs it every few
seconds. `RepeatFilter` lets the first occurrence through, swallows identical ones for
`window` seconds, and the first one after that says how many were swallowed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RepeatFilter(logging.Filter):
    """Collapse identical WARNING-and-above records within `window` seconds into one, with a count."""

    def __init__(self, window: float = 60.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem
            return True
        key = (record.name, record.levelno, message)
        now = self.clock()
        first, suppressed = self._seen.get(key, (float("-inf"), 0))
        if now - first < self.window:
            self._seen[key] = (first, suppressed + 1)
            return False
        self._seen[key] = (now, 0)
        if suppressed:
            record.msg = f"{message} (and {suppressed} more time(s) like it in the last {self.window:.0f} s)"
            record.args = ()
        if len(self._seen) > 1000:  # forget old messages
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
        return True


def install(window: float = 60.0) -> None:
    """Add the filter to every handler of the root logger (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter(window))
