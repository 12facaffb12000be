"""One history import: where from, into which profile, how far it got, and how to go on.

An import runs as a job on the queue (`tasks.py`); this row carries what the job row can't:
the counters, the problems worth showing, and the cursor a resumed job continues from. The
counters and the cursor are written in the same transaction as each batch of listens, so a
job that stops anywhere resumes without a lost or a double-counted listen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import Base

IMPORT_SOURCES = ("lastfm", "listenbrainz")
# The job kind that runs imports (`tasks.py`); its key is the import's id.
IMPORT_JOB = "import"
IMPORT_STATUSES = ("running", "done", "failed")


class Import(Base):
    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    # By name: a profile deleted meanwhile fails the import with a sentence instead of a
    # foreign key blocking the deletion.
    profile: Mapped[str] = mapped_column(Text)
    # Last.fm: user, since. ListenBrainz: the export's path, format, size, and whether it is
    # an upload spooled by us (deleted once the import ends).
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(Text, server_default="running")
    imported: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    duplicates: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    skipped: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # Progress: `done` of `total` `unit`s (Last.fm: scrobbles; ListenBrainz: bytes of the file).
    done: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    total: Mapped[int | None] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(Text, server_default="listens")
    # The first problems (malformed or skipped entries), each {"line", "reason"}.
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    # Where a resumed job goes on (Last.fm: the oldest scrobble done; ListenBrainz: entries read).
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"source IN ({', '.join(repr(s) for s in IMPORT_SOURCES)})", name="source"),
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in IMPORT_STATUSES)})", name="status"),
        Index("ix_imports_created", "created_at"),
        Index("ix_imports_running", "source", postgresql_where=text("status = 'running'")),
    )
