"""Discovery edges: seed track -> similar candidate, with Last.fm's match score."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import Base


class TrackSimilarity(Base):
    __tablename__ = "track_similarities"

    seed_track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True)
    candidate_track_id: Mapped[int] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True
    )
    match: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(Text, server_default="lastfm")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_track_similarities_candidate", "candidate_track_id"),)
