"""Vibe text rules shared by every stage that takes a vibe (feedback, recommendations, playlists).

A vibe is free text ("chill ambient lo-fi"). Its normal form — casefolded, whitespace
collapsed — is the cache key of its vectors and the context of feedback given under it.
`general` is the context of feedback given without a vibe.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

GENERAL_VIBE = "general"
VIBE_MAX_CHARS = 200


def normalize_vibe(text: str) -> str:
    """The cache key and feedback context of a vibe: casefolded, whitespace collapsed."""
    return " ".join(text.split()).casefold()


def clean_vibe(value: str) -> str:
    """Check a vibe (at most 200 characters, no NUL, not blank) and trim it."""
    if "\x00" in value:
        raise ValueError("the vibe must not contain NUL characters")
    if len(value) > VIBE_MAX_CHARS:
        raise ValueError(f"the vibe must be at most {VIBE_MAX_CHARS} characters")
    value = value.strip()
    if not value:
        raise ValueError("the vibe must not be blank")
    return value


VibeStr = Annotated[
    str,
    AfterValidator(clean_vibe),
    Field(json_schema_extra={"minLength": 1, "maxLength": VIBE_MAX_CHARS, "pattern": r"\S"}),
]
