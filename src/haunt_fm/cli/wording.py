"""Messages in the command line's words.

The services and the API speak HTTP: "Create it with POST /api/profiles", "pass a vibe,
e.g. ?vibe=chill+ambient", "auto_play needs speaker_entity". The same sentences reach the
command line, in-process or from a remote service's error body, so the CLI rewrites the
well-known phrases into its own commands and options before showing them. A sentence it
doesn't know passes through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# Whole phrases first (they read better rewritten as a whole), then the endpoints one by one.
_PHRASES: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"Profile '([^']+)' does not exist\. Create it with POST /api/profiles\."),
        r"Profile '\1' does not exist. Create it with `haunt-fm profiles create \1`.",
    ),
    (
        re.compile(r"pass a vibe, e\.g\. \?vibe=([^\s.]+)"),
        lambda m: f"pass a vibe, e.g. --vibe '{m.group(1).replace('+', ' ')}'",
    ),
    (re.compile(r"\bauto_play needs speaker_entity\b"), "--play needs --speaker"),
    (re.compile(r"\bspeaker_entity must be\b"), "--speaker must be"),
    (re.compile(r"\s*\(POST /api/history/webhook\)"), " (the Home Assistant automation)"),
    # Only a remote import's follow-up can meet it, and no command lists imports.
    (re.compile(r"; GET /api/admin/imports lists them\."), "."),
]
_ENDPOINTS: list[tuple[str, str]] = [
    ("POST /api/admin/discover", "`haunt-fm discover`"),
    ("POST /api/admin/build-taste-profile", "`haunt-fm taste rebuild`"),
    ("POST /api/admin/retry-failed", "`haunt-fm retry-failed`"),
    ("POST /api/feedback", "`haunt-fm feedback TRACK_ID up|down`"),
    ("POST /api/profiles", "`haunt-fm profiles create NAME`"),
    ("POST /api/playlists/generate", "`haunt-fm playlist`"),
    ("GET /api/recommendations", "`haunt-fm recommend`"),
    ("GET /api/history/recent", "`haunt-fm recent`"),
    ("GET /api/profiles", "`haunt-fm profiles list`"),
    ("POST /api/radio", "`haunt-fm radio start`"),
    ("GET /api/radio", "`haunt-fm radio status`"),
    ("POST /api/admin/import/lastfm", "`haunt-fm import lastfm`"),
    ("POST /api/admin/import/listenbrainz", "`haunt-fm import listenbrainz`"),
    ("GET /api/status", "`haunt-fm status`"),
    ("/api/status", "`haunt-fm status`"),
]


def cli_words(message: str) -> str:
    """`message` with the API's wording replaced by the command line's."""
    for pattern, replacement in _PHRASES:
        message = pattern.sub(replacement, message)
    for endpoint, command in _ENDPOINTS:
        message = message.replace(endpoint, command)
    return message


def validation_message(errors: Iterable[Mapping[str, Any]], *, options: Mapping[str, str]) -> str:
    """Pydantic's (or the API's 422) field errors as one sentence naming the CLI's options.

    `options` maps a field name to how the command line spells it (`known_pct` -> `--known-pct`).
    """
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        message = str(error.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        field = loc[-1] if loc else ""
        parts.append(f"{options.get(field, field)}: {message}" if field else message)
    return cli_words("; ".join(parts) + ".") if parts else "The options are not valid."
