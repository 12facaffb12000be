"""Discovery edges: seed track -> similar candidate, with Last.fm's match score."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import Base
from haunt_fm.queue import Stage


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


# Seeds: listened tracks (of one profile, or everyone's) never expanded or expanded before the
# run's cutoff; never-expanded first, then the most played, then the most recently played.
# `:cutoff`, `:profile_id` and `:tried` (seeds this run already had) are bound by the run.
DISCOVERY_STAGE = Stage(
    name="discovery",
    table="tracks",
    prefix="discovery_",
    has_status=False,
    pending=(
        "listened AND (lastfm_expanded_at IS NULL OR lastfm_expanded_at < CAST(:cutoff AS timestamptz))"
        " AND (CAST(:profile_id AS bigint) IS NULL OR EXISTS (SELECT 1 FROM listen_events e"
        " WHERE e.track_id = tracks.id AND e.profile_id = CAST(:profile_id AS bigint)))"
    ),
    ready="id <> ALL(CAST(:tried AS bigint[]))",
    order_by="lastfm_expanded_at ASC NULLS FIRST, play_count DESC, last_played_at DESC NULLS LAST, id",
    returning=("t.artist", "t.title", "t.norm_key"),
)
