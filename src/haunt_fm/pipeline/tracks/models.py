"""A track: one song, whatever source named it (identity = normalised artist + title).

The discovery, preview-lookup, embedding and tags stages hand work to each other through their
queue columns on this row (see `haunt_fm.queue.stage`), claimed with FOR UPDATE SKIP LOCKED
and a heartbeat-renewed lease.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import Base

PREVIEW_STATUSES = ("pending", "found", "not_found", "failed")
EMBEDDING_STATUSES = ("waiting", "pending", "done", "failed")
TAGS_STATUSES = ("pending", "done", "failed")


class Track(Base):
    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    artist: Mapped[str] = mapped_column(Text)
    album: Mapped[str | None] = mapped_column(Text)
    norm_artist: Mapped[str] = mapped_column(Text)
    norm_title: Mapped[str] = mapped_column(Text)
    # norm_artist + U+001F + norm_title; unique: the identity of a song.
    norm_key: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Where we first heard of it: "listen", "lastfm" (a seed's similar track) or "tag:<tag>" (a
    # tag's top track, asked for by a vibe).
    source: Mapped[str] = mapped_column(Text, server_default="listen")
    # True once anyone listened to it: listened tracks go first in every queue.
    listened: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Summed Last.fm match score over all seeds: candidates are looked up best-first.
    discovery_score: Mapped[float] = mapped_column(Float, server_default=text("0"))
    # Listens of it (any profile, duplicates aside) and the latest: seeds go most played first.
    play_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_played_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Bumped by every statement that adds or removes a listen of this track (listens stage).
    listen_seq: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))

    # Last.fm metadata
    mbid: Mapped[str | None] = mapped_column(Text)
    lastfm_url: Mapped[str | None] = mapped_column(Text)
    lastfm_expanded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Discovery stage (seeds), on the lease queue: due when never expanded or expanded long ago.
    discovery_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    discovery_error: Mapped[str | None] = mapped_column(Text)
    discovery_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    discovery_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    discovery_lease_owner: Mapped[str | None] = mapped_column(Text)

    # Preview lookup stage (iTunes)
    preview_status: Mapped[str] = mapped_column(String(16), server_default="pending")
    preview_url: Mapped[str | None] = mapped_column(Text)
    itunes_track_id: Mapped[int | None] = mapped_column(BigInteger)
    itunes_album: Mapped[str | None] = mapped_column(Text)
    genre: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    artwork_url: Mapped[str | None] = mapped_column(Text)
    preview_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    preview_error: Mapped[str | None] = mapped_column(Text)
    preview_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    preview_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    preview_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    preview_lease_owner: Mapped[str | None] = mapped_column(Text)

    # Embedding stage (CLAP): "waiting" until a preview is found, then "pending".
    embedding_status: Mapped[str] = mapped_column(String(16), server_default="waiting")
    embedding_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    embedding_error: Mapped[str | None] = mapped_column(Text)
    embedding_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    embedding_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    embedding_lease_owner: Mapped[str | None] = mapped_column(Text)

    # Tags stage (Last.fm track.getTopTags): pending -> done | failed, fetched again after
    # HAUNTFM_TAGS_REFRESH_DAYS (next_at). Same order as every stage: listened first.
    tags_status: Mapped[str] = mapped_column(String(16), server_default="pending")
    tags_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    tags_error: Mapped[str | None] = mapped_column(Text)
    tags_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tags_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tags_lease_owner: Mapped[str | None] = mapped_column(Text)
    tags_fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_tracks_preview_queue",
            "listened",
            "discovery_score",
            postgresql_where=text("preview_status = 'pending'"),
        ),
        Index(
            "ix_tracks_embedding_queue",
            "listened",
            "discovery_score",
            postgresql_where=text("embedding_status = 'pending'"),
        ),
        Index(
            "ix_tracks_tags_queue",
            "listened",
            "discovery_score",
            postgresql_where=text("tags_status = 'pending'"),
        ),
        Index(
            "ix_tracks_discovery_queue",
            "lastfm_expanded_at",
            "play_count",
            postgresql_where=text("listened"),
        ),
        Index("ix_tracks_preview_status", "preview_status"),
        Index("ix_tracks_embedding_status", "embedding_status"),
    )
