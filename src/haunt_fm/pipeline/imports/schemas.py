"""Import requests and the import document (`GET /api/admin/imports/{id}`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from haunt_fm.pipeline.common import NonBlankStr, OptionalStr

ImportSource = Literal["lastfm", "listenbrainz"]
ImportStatus = Literal["running", "done", "failed"]


class LastfmImportIn(BaseModel):
    """Import a Last.fm user's scrobbles (`since`: only those from then on)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"user": "rj", "profile": "antialias", "since": None}},
    )

    user: NonBlankStr = Field(max_length=64, description="The Last.fm username.")
    profile: OptionalStr = Field(default=None, max_length=64, description="Profile name; default: default.")
    since: datetime | None = Field(
        default=None,
        description="Only scrobbles from then on: a date (2025-01-01) or an ISO-8601 time; naive = UTC.",
    )

    @field_validator("since")
    @classmethod
    def _sane_time(cls, value: datetime | None) -> datetime | None:
        # Any date the schema allows is accepted: before 1970 (before any scrobble) means from
        # the start; a date still to come leaves nothing to import.
        if value is not None and value.year < 1970:
            return None
        return value


class ImportProblem(BaseModel):
    """An entry of the export that was not imported, and why."""

    line: int | None = Field(description="1-based line of the export file (None for Last.fm pages).")
    kind: Literal["malformed", "skipped"]
    reason: str


class ImportProgress(BaseModel):
    done: int = Field(description="Scrobbles (Last.fm) or bytes of the export (ListenBrainz) read so far.")
    total: int | None = Field(description="How many there are in all, when known.")
    unit: Literal["scrobbles", "bytes"]


class ImportOut(BaseModel):
    """One import: its counters so far, and why it failed if it did."""

    import_id: int
    source: ImportSource
    profile: str
    status: ImportStatus = Field(description="running (also while waiting to be retried), done or failed.")
    imported: int = Field(description="Listens stored.")
    duplicates: int = Field(description="Listens already stored (the same track within 60 s of a listen).")
    skipped: int = Field(description="Entries that are not listens (malformed, or missing a name or a time).")
    error: str | None = Field(description="Why it failed, or why it is waiting to be tried again.")
    progress: ImportProgress
    problems: list[ImportProblem] = Field(description="The first 100 skipped entries, with their lines.")
    user: str | None = Field(default=None, description="Last.fm: the user.")
    since: datetime | None = Field(default=None, description="Last.fm: only scrobbles from then on.")
    filename: str | None = Field(default=None, description="ListenBrainz: the export's file name.")
    job_id: int | None = Field(default=None, description="The queue job that runs it.")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class ImportList(BaseModel):
    imports: list[ImportOut]
