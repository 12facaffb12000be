"""Listen events, as Home Assistant reports them, and the speaker groups it showed us."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import Base

LISTEN_SOURCES = ("webhook", "ha_history", "lastfm", "listenbrainz")


class ListenEvent(Base):
    __tablename__ = "listen_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id"))
    played_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # As reported, before normalisation.
    title: Mapped[str] = mapped_column(Text)
    artist: Mapped[str] = mapped_column(Text)
    album: Mapped[str | None] = mapped_column(Text)
    speaker_name: Mapped[str | None] = mapped_column(Text)
    speaker_entity: Mapped[str | None] = mapped_column(Text)
    media_content_id: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[int | None] = mapped_column(Integer)
    # Where it came from: the webhook, Home Assistant's history (reconciliation), or an import.
    source: Mapped[str] = mapped_column(Text, server_default=text("'webhook'"))
    # The speaker it played on (entity id, else name), normalised like speaker mappings: each
    # speaker's listens in order decide resumes and groups (see service.py).
    speaker_key: Mapped[str | None] = mapped_column(Text)
    # Cut short: the next listen on the same speaker started within the skip window
    # (pipeline/listens/rules.py; applied by the statement that stores a listen). Skipped
    # listens feed no taste.
    skipped: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    # The 60-second duplicate rule is an exclusion constraint (see migration 0001):
    # no two events of one (track, profile) whose [played_at, played_at + 60 s) overlap.
    __table_args__ = (
        CheckConstraint(f"source IN ({', '.join(repr(s) for s in LISTEN_SOURCES)})", name="source"),
        Index("ix_listen_events_profile_played", "profile_id", "played_at"),
        Index("ix_listen_events_played", "played_at"),
        # Taste staleness: "any listen received since the profile was built?"
        Index("ix_listen_events_profile_received", "profile_id", "received_at"),
        Index("ix_listen_events_track", "track_id"),
        # The previous and next listen on a speaker: resume, group and skip rules.
        Index(
            "ix_listen_events_speaker_played",
            "speaker_key",
            "played_at",
            postgresql_where=text("speaker_key IS NOT NULL"),
        ),
    )


class SpeakerGroup(Base):
    """A player that reported other players in its `group_members` (a Music Assistant group)."""

    __tablename__ = "speaker_groups"

    group_key: Mapped[str] = mapped_column(Text, primary_key=True)
    member_key: Mapped[str] = mapped_column(Text, primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_speaker_groups_member", "member_key"),)
