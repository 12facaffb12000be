"""Named profiles (one per listener) and the speakers mapped to them."""

from __future__ import annotations

from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY
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


class ProfileTaste(Base):
    """One of a profile's tastes (1..6): a cluster of what it listens to, written by the taste stage.

    `profiles.taste_embedding` stays the overall weighted mean; with one taste, its centroid
    is exactly that vector.
    """

    __tablename__ = "profile_tastes"

    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True)
    # 0 = the heaviest taste.
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    centroid: Mapped[list[float]] = mapped_column(Vector(EMBEDDING_DIM))
    # Share of the profile's listening weight (the tastes' weights sum to 1).
    weight: Mapped[float] = mapped_column(Float)
    tracks: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(Text)
    top_artists: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The weighted mean cosine of the taste's tracks to its centroid (migration 0011), so at least
    # one of its tracks lies this near it: an index search from the centroid that finds nothing
    # as near went astray (pipeline/recommendations/service.py). NULL: built before; stale.
    cohesion: Mapped[float | None] = mapped_column(Float)
