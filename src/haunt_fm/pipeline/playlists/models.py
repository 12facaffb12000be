"""Saved playlists and their tracks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Index, Integer, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import Base


class Playlist(Base):
    __tablename__ = "playlists"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    vibe: Mapped[str | None] = mapped_column(Text)
    alpha: Mapped[float | None] = mapped_column(Float)
    known_count: Mapped[int] = mapped_column(Integer)
    new_count: Mapped[int] = mapped_column(Integer)
    speaker_entity: Mapped[str | None] = mapped_column(Text)
    playback: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    # Known favourites rotate: the profile's last playlist is looked up on every generation.
    __table_args__ = (Index("ix_playlists_profile_id", "profile_id", "id"),)


class PlaylistTrack(Base):
    __tablename__ = "playlist_tracks"

    playlist_id: Mapped[int] = mapped_column(ForeignKey("playlists.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(Text)  # known|new
    score: Mapped[float | None] = mapped_column(Float)
