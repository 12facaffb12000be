"""Thumbs up/down per profile, in a vibe context ("general" by default)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import Base
from haunt_fm.pipeline.vibes import GENERAL_VIBE


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id"))
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    rating: Mapped[str] = mapped_column(Text)
    vibe: Mapped[str] = mapped_column(Text, server_default=GENERAL_VIBE)
    vibe_norm: Mapped[str] = mapped_column(Text, server_default=GENERAL_VIBE)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("rating IN ('up', 'down')", name="rating"),
        # One opinion per (profile, track, vibe context); a new click replaces the old one.
        UniqueConstraint("profile_id", "track_id", "vibe_norm", name="uq_feedback_profile_track_vibe"),
        Index("ix_feedback_profile_created", "profile_id", "created_at"),
    )
