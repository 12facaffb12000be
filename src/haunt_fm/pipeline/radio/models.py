"""A radio on one speaker, and the tracks it queued there.

The radio row is also its own work item on the lease queue (`RADIO_STAGE`, columns prefixed
`work_`): whoever holds its lease — the request that starts it, or a `RadioRunner` in any
`serve` process — reads the speaker's new listens, ends or extends the radio, and queues the
unsent tracks through Home Assistant. One holder at a time, so a track is never sent twice.

A listen stored with a speaker pokes that speaker's active radio in the same statement: a
trigger on `listen_events` (migration 0005) bumps `pokes`, makes the radio due now and
NOTIFYs `radio`, so the runner reacts within moments whichever process (or Home Assistant
reconciliation) stored the listen. The webhook's own code does not change and pays one probe
of the partial unique index on the active radios' speakers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import Base
from haunt_fm.queue import Stage

# Why a radio ended: stopped (DELETE), replaced (a new radio on the speaker), outside (the
# speaker played a track the radio didn't queue), silent (nothing from it heard for longer
# than its queued tracks could last), exhausted (nothing left to queue), failed (Home
# Assistant kept refusing to queue its tracks).
ENDED_REASONS = ("stopped", "replaced", "outside", "silent", "exhausted", "failed")
SEND_STATUSES = ("pending", "queued", "failed")


class Radio(Base):
    __tablename__ = "radios"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    speaker_entity: Mapped[str] = mapped_column(Text)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    vibe: Mapped[str | None] = mapped_column(Text)
    alpha: Mapped[float] = mapped_column(Float)
    known_pct: Mapped[float] = mapped_column(Float)
    batch: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_reason: Mapped[str | None] = mapped_column(Text)
    ended_detail: Mapped[str | None] = mapped_column(Text)
    last_heard_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Listens with an id up to this one have been read (the newest listen id when it started).
    listen_cursor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # Bumped by the listen trigger: a holder that saw fewer pokes than there are now runs again.
    pokes: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # The lease queue's columns (no status column: an active radio is work).
    work_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    work_error: Mapped[str | None] = mapped_column(Text)
    work_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    work_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    work_lease_owner: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            f"ended_reason IS NULL OR ended_reason IN ({', '.join(repr(r) for r in ENDED_REASONS)})",
            name="ended_reason",
        ),
        CheckConstraint("active = (ended_at IS NULL)", name="ended"),
        # One radio per speaker; the listen trigger finds it through this index.
        Index("uq_radios_active_speaker", "speaker_entity", unique=True, postgresql_where=text("active")),
        Index("ix_radios_queue", "work_next_at", postgresql_where=text("active")),
        Index("ix_radios_started", "started_at"),
    )


class RadioTrack(Base):
    __tablename__ = "radio_tracks"

    radio_id: Mapped[int] = mapped_column(ForeignKey("radios.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    batch_no: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)  # known|new
    score: Mapped[float | None] = mapped_column(Float)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Sent to Music Assistant: pending (not yet), queued (accepted), failed (it could not find it).
    send_status: Mapped[str] = mapped_column(Text, server_default="pending")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    send_error: Mapped[str | None] = mapped_column(Text)
    # Heard on the speaker: the listen that matched it, and how long the speaker said it lasts.
    played_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    heard_duration_s: Mapped[int | None] = mapped_column(Integer)
    skipped: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    __table_args__ = (
        CheckConstraint("kind IN ('known', 'new')", name="kind"),
        CheckConstraint(f"send_status IN ({', '.join(repr(s) for s in SEND_STATUSES)})", name="send_status"),
        # Never the same track twice in one radio.
        UniqueConstraint("radio_id", "track_id", name="uq_radio_tracks_radio_track"),
        Index("ix_radio_tracks_track", "track_id"),
    )


# Due radios oldest-due first. `pending` is the radio being active (no status column).
RADIO_STAGE = Stage(
    name="radio",
    table="radios",
    prefix="work_",
    order_by="work_next_at NULLS FIRST, id",
    pending="active",
    has_status=False,
    returning=("t.pokes",),
)
