"""CLAP vectors for tracks and for vibe texts, and the state each worker reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, Text, func
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import EMBEDDING_DIM, Base
from haunt_fm.queue import Stage


class TrackEmbedding(Base):
    __tablename__ = "track_embeddings"

    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True)
    # L2-normalised; HNSW index with vector_cosine_ops (migration 0001).
    embedding: Mapped[list[float]] = mapped_column(Vector(EMBEDDING_DIM))
    model: Mapped[str] = mapped_column(Text)
    pipeline_version: Mapped[int] = mapped_column(Integer)
    windows: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # torch | onnx | onnx-int8 (migration 0006); provenance only: runtimes that passed the
    # fidelity gate share one vector space, so a change of runtime re-embeds nothing.
    runtime: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(
            "ix_track_embeddings_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        # Taste staleness: "did one of the profile's tracks get embedded since the build?"
        Index("ix_track_embeddings_created", "created_at"),
        # Vectors of another model are left out of every query and re-embedded; /api/status counts
        # them (an index-only scan instead of reading every vector).
        Index("ix_track_embeddings_model", "model"),
    )


class TextEmbedding(Base):
    """Vibe text embeddings, cached by normalised text.

    A request from an API process without a loaded model is a row with status
    'pending' that any worker (on any machine) leases and computes (`TEXT_STAGE`).
    """

    __tablename__ = "text_embeddings"

    text_norm: Mapped[str] = mapped_column(Text, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="pending")  # pending|done|failed
    embedding: Mapped[list[float] | None] = mapped_column(Vector(EMBEDDING_DIM))
    model: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Queue columns (haunt_fm.queue.stage): workers lease texts like tracks.
    attempts: Mapped[int] = mapped_column(Integer, server_default=sql("0"))
    next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_text_embeddings_queue", "requested_at", postgresql_where=sql("status = 'pending'")),
    )


class WorkerState(Base):
    """One row per worker process; /api/status summarises them."""

    __tablename__ = "worker_states"

    id: Mapped[str] = mapped_column(Text, primary_key=True)  # hostname:pid:random
    hostname: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(Text)  # loading|idle|working|error
    model: Mapped[str | None] = mapped_column(Text)
    model_loaded: Mapped[bool] = mapped_column(Boolean, server_default="false")
    text_tower_ok: Mapped[bool | None] = mapped_column(Boolean)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_batch_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    tracks_done: Mapped[int] = mapped_column(BigInteger, server_default="0")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# Tracks whose preview is known, listened first, then the best discovery candidates.
EMBEDDING_STAGE = Stage(
    name="embeddings",
    table="tracks",
    prefix="embedding_",
    order_by="listened DESC, discovery_score DESC, id",
    ready="preview_url IS NOT NULL",
    returning=("t.preview_url", "t.title", "t.artist"),
)

# NOTIFY payload a worker sends after storing vibe texts: waiting API processes look again.
TEXTS_DONE = "texts_done"

# Vibe texts asked for by API processes without a model, oldest first.
TEXT_STAGE = Stage(
    name="texts",
    table="text_embeddings",
    key="text_norm",
    order_by="requested_at",
    returning=("t.text",),
)

# Workers report every HEARTBEAT_SECONDS; one silent for twice that is gone (crashed, killed).
HEARTBEAT_SECONDS = 30.0
WORKER_STALE_SECONDS = 2 * HEARTBEAT_SECONDS
