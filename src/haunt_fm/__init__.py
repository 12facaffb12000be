"""haunt-fm: a personal music recommendation engine for a household."""

__version__ = "0.1.0"
