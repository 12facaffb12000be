"""Webhook and history bodies."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from haunt_fm.pipeline.common import NonBlankStr, as_utc

# Optional text fields: (longest kept, cut to that length rather than dropped). A cut album or
# speaker name still reads right; a cut id or signed URL would be wrong, so those are dropped.
_OPTIONAL_TEXT: dict[str, tuple[int, bool]] = {
    "album": (1000, True),
    "speaker_name": (500, True),
    "speaker_entity": (255, False),  # Home Assistant's own limit for entity ids
    "media_content_id": (2000, False),
    "profile": (200, False),
}
MAX_DURATION_S = 86_400
# An optional field takes any JSON value (the schema says so): one that is not what it should be
# is ignored with a note, and the listen is stored all the same.
Lenient = WithJsonSchema({})
_IGNORED = " Any other value is ignored (the answer's `note` says so); the listen is stored."
MAX_GROUP_MEMBERS = 64
# A played_at further ahead of our clock than this is a wrong clock: the arrival time is used.
FUTURE_SKEW = timedelta(minutes=5)
_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def _shorten(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _text(name: str, value: Any, notes: list[str]) -> str | None:
    limit, cut = _OPTIONAL_TEXT[name]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        notes.append(f"{name} was ignored: it is not text.")
        return None
    value = str(value).strip()
    if "\x00" in value:
        notes.append(f"{name} was ignored: it contains a NUL character.")
        return None
    if len(value) <= limit:
        return value or None
    if cut:
        notes.append(f"{name} was cut to {limit} characters.")
        return value[:limit].rstrip()
    notes.append(f"{name} was ignored: it is longer than {limit} characters.")
    return None


def _duration(value: Any, notes: list[str]) -> int | None:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is not None and not math.isfinite(number) and not isinstance(value, str):
        # NaN and Infinity are not JSON: the body is malformed, as for any endpoint (422).
        raise ValueError("duration_s must be a finite number (NaN and Infinity are not JSON)")
    if number is None or not math.isfinite(number):
        notes.append("duration_s was ignored: it is not a number of seconds.")
        return None
    seconds = round(number)
    if seconds == 0:
        return None  # players report 0 for streams of unknown length
    if not 0 < seconds <= MAX_DURATION_S:
        notes.append(f"duration_s was ignored: {_shorten(str(value))} is not between 1 and {MAX_DURATION_S}.")
        return None
    return seconds


def _played_at(value: Any, notes: list[str]) -> datetime | None:
    try:
        when = _DATETIME.validate_python(value)
    except ValidationError:
        notes.append("played_at was ignored: it is not an ISO-8601 date-time; the arrival time was used.")
        return None
    if not 1970 <= when.year <= 2200:
        notes.append(
            "played_at was ignored: it is not a date between 1970 and 2200; the arrival time was used."
        )
        return None
    when = as_utc(when)
    if when > datetime.now(UTC) + FUTURE_SKEW:
        notes.append("played_at was ignored: it lies in the future; the arrival time was used.")
        return None
    return when


def _members(value: Any, notes: list[str]) -> list[str] | None:
    if not isinstance(value, list) or len(value) > MAX_GROUP_MEMBERS:
        notes.append(
            f"group_members was ignored: it is not a list of at most {MAX_GROUP_MEMBERS} entity ids."
        )
        return None
    members = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > 255 or "\x00" in item:
            notes.append("group_members was ignored: it is not a list of entity ids.")
            return None
        members.append(item.strip())
    return members


class ListenIn(BaseModel):
    """One listen, as the Home Assistant automation reports it.

    Only `title` and `artist` can make a listen fail (422). Any other field that is out of
    range, too long or of the wrong type is dropped or cut, the listen is stored, and the
    answer's `note` says what was ignored.
    """

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "example": {
                "title": "Paranoid Android",
                "artist": "Radiohead",
                "album": "OK Computer",
                "speaker_name": "Study speaker",
                "speaker_entity": "media_player.study_speaker_2",
                "profile": "antialias",
                "played_at": "2026-11-20T21:04:00+00:00",
                "media_content_id": "applemusic://track/1097861387",
                "duration_s": 383,
                "group_members": [],
            }
        },
    )

    title: NonBlankStr = Field(max_length=1000)
    artist: NonBlankStr = Field(max_length=1000)
    album: Annotated[str | None, Lenient] = Field(
        default=None, description="Text, cut to 1000 characters." + _IGNORED
    )
    speaker_name: Annotated[str | None, Lenient] = Field(
        default=None, description="Text, cut to 500 characters." + _IGNORED
    )
    speaker_entity: Annotated[str | None, Lenient] = Field(
        default=None,
        description="The player's entity id (text); ignored when longer than 255 characters." + _IGNORED,
    )
    profile: Annotated[str | None, Lenient] = Field(
        default=None,
        description="Log to this profile (text); unknown or invalid: the speaker mapping decides." + _IGNORED,
    )
    played_at: Annotated[datetime | None, Lenient] = Field(
        default=None,
        description=(
            "When it started playing (ISO-8601 text; naive = UTC). Default, and instead of a time "
            "more than 5 minutes ahead, outside 1970..2200 or not a date-time: the arrival time."
        ),
    )
    media_content_id: Annotated[str | None, Lenient] = Field(
        default=None, description="Text; ignored when longer than 2000 characters." + _IGNORED
    )
    duration_s: Annotated[int | None, Lenient] = Field(
        default=None,
        description=(
            f"Track length in seconds, a number (fractions are rounded); ignored outside "
            f"1..{MAX_DURATION_S}." + _IGNORED
        ),
    )
    group_members: Annotated[list[str] | None, Lenient] = Field(
        default=None,
        description=(
            "The player's `group_members` attribute, a list of entity ids: a group player lists "
            "its member players, whose listens of the same track are then the group's." + _IGNORED
        ),
    )
    # What was dropped or cut, for the answer's note (set by the validator below only).
    ignored: SkipJsonSchema[list[str]] = Field(default_factory=list, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _lenient_optional_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        notes: list[str] = []
        for name in _OPTIONAL_TEXT:
            if data.get(name) is not None:
                data[name] = _text(name, data[name], notes)
        if data.get("duration_s") is not None:
            data["duration_s"] = _duration(data["duration_s"], notes)
        if data.get("played_at") not in (None, ""):
            data["played_at"] = _played_at(data["played_at"], notes)
        else:
            data["played_at"] = None
        if data.get("group_members") is not None:
            data["group_members"] = _members(data["group_members"], notes)
        data["ignored"] = notes
        return data


ListenStatus = Literal["logged", "duplicate", "resumed", "grouped"]


class ListenLogged(BaseModel):
    status: ListenStatus = Field(
        description=(
            "`logged`: a new listen. Not stored again: `duplicate` (the same track for the same "
            "profile or on the same speaker within 60 s), `resumed` (the track the speaker was "
            "already playing, within its duration), `grouped` (a member of a group player that "
            "plays the same track: the group's listen counts)."
        )
    )
    event_id: int = Field(description="The listen stored, or the one this report belongs to.")
    track_id: int
    profile: str = Field(description="The profile of that listen.")
    note: str | None = Field(
        default=None,
        description="Why the listen went to another profile, and which optional fields were ignored, if any.",
    )


ListenSource = Literal["webhook", "ha_history", "lastfm", "listenbrainz"]


class ListenOut(BaseModel):
    event_id: int
    track_id: int
    title: str
    artist: str
    album: str | None
    profile: str
    speaker_name: str | None
    speaker_entity: str | None
    played_at: datetime
    media_content_id: str | None = None
    duration_s: int | None = None
    source: ListenSource = Field(
        default="webhook",
        description=(
            "`webhook`, `ha_history` (recovered from Home Assistant's history), `lastfm` or `listenbrainz`."
        ),
    )
    skipped: bool = Field(
        default=False,
        description="Cut short: the next listen on the same speaker started within min(30 s, half "
        "the track's duration). Skipped listens feed no taste.",
    )


class RecentListens(BaseModel):
    events: list[ListenOut]


class TrackRef(BaseModel):
    """A stored track, as a listen or a rating names it."""

    track_id: int
    title: str
    artist: str
    album: str | None = None


class SpeakerHeard(BaseModel):
    """A speaker listens were reported from, as the webhook (or history) named it."""

    speaker_name: str | None
    speaker_entity: str | None
    last_played_at: datetime
