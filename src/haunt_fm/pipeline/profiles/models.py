"""Named profiles (one per listener) and the speakers mapped to them."""

from __future__ import annotations

from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import EMBEDDING_DIM, Base

DEFAULT_PROFILE = "default"


class Profile(Base):
    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Bumped by rare changes that timestamps cannot show (feedback deleted, listens moved
    # here from a deleted profile). The taste profile is stale when activity_at, or any
    # listen's received_at or feedback's created_at, is newer than taste_built_at.
    activity_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    taste_embedding: Mapped[list[float] | None] = mapped_column(Vector(EMBEDDING_DIM))
    taste_built_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    taste_tracks_used: Mapped[int | None] = mapped_column(Integer)
    # The CLAP model whose vectors built the taste: a taste of another model lives in another
    # space, so it is stale once HAUNTFM_CLAP_MODEL changes.
    taste_model: Mapped[str | None] = mapped_column(Text)


class SpeakerMapping(Base):
    __tablename__ = "speaker_mappings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    speaker: Mapped[str] = mapped_column(Text)
    # lower(trim(speaker)): a speaker belongs to one profile at most.
    speaker_norm: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
