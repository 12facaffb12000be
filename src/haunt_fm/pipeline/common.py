"""Small pieces shared by the stage packages: input validation, profile lookup, the Last.fm client."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated

import httpx
from fastapi import Query
from pydantic import AfterValidator, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.clients.lastfm import LastfmClient
from haunt_fm.config import Settings
from haunt_fm.db.rate_limits import shared_limiter
from haunt_fm.errors import Conflict

PROFILE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

LimitQuery = Annotated[int, Query(ge=1, le=500, description="How many rows, 1..500.")]


# At least one visible character: not only whitespace, not only format characters that render as
# nothing. The schema says so too (schemathesis holds us to it).
# Unicode format characters (category Cf) as ranges; tests/unit/test_visible_text.py checks this
# list against unicodedata, so it can't drift from `is_blank`.
FORMAT_CHARS = (
    r"\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    r"\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    r"\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    r"\U000e0020-\U000e007f"
)
# \s in a JSON Schema pattern (ECMA-262) leaves out what Python counts as space too: the
# information separators U+001C..U+001F and NEL.
VISIBLE = r"[^\s\x1c-\x1f\x85" + FORMAT_CHARS + "]"


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; reject rather than fail later with a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def is_blank(value: str) -> bool:
    """True when nothing visible is left: only whitespace and invisible format characters
    (zero-width space and joiners, word joiner, BOM...)."""
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in value)


def _stripped_nonblank(value: str) -> str:
    value = _no_nul(value).strip()
    if is_blank(value):
        raise ValueError("must not be blank (or only invisible characters)")
    return value


def _stripped_optional(value: str | None) -> str | None:
    if value is None:
        return None
    value = _no_nul(value).strip()
    return value or None


NonBlankStr = Annotated[
    str,
    AfterValidator(_stripped_nonblank),
    Field(json_schema_extra={"minLength": 1, "pattern": VISIBLE}),
]
OptionalStr = Annotated[str | None, AfterValidator(_stripped_optional)]


def validate_profile_name(name: str) -> str:
    if not PROFILE_NAME_RE.match(name):
        raise ValueError(
            "profile names are 1-64 characters: lowercase letters, digits, '_' and '-', "
            "starting with a letter or digit"
        )
    return name


ProfileName = Annotated[
    str, AfterValidator(validate_profile_name), Field(json_schema_extra={"pattern": PROFILE_NAME_RE.pattern})
]


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def lastfm_client(
    settings: Settings,
    *,
    http: httpx.AsyncClient | None,
    sessions: async_sessionmaker[AsyncSession],
    no_key_message: str,
) -> LastfmClient:
    """A Last.fm client on the limiter every process on this database shares; 409 without a key."""
    if settings.lastfm_api_key is None:
        raise Conflict(no_key_message)
    return LastfmClient(
        settings.lastfm_api_key,
        settings.lastfm_api_url,
        http=http,
        limiter=shared_limiter("lastfm", rate=settings.lastfm_rate_per_second, per=1.0, sessions=sessions),
    )
