"""Tags: what Last.fm's listeners say about a track, the tag lookups vibes ask for, and the
vibe vectors grounded in them.

- `track_tags`: a track's normalised tags (`normalize.normalize_tag`) with Last.fm's weight
  (`count`, 0..100, relative to the track's heaviest tag). Fetched by the tags stage
  (`TAGS_STAGE`: queue columns `tags_*` on `tracks`).
- `tag_lookups`: when each tag's chart (`tag.getTopTracks`) was last asked for, so a tag is
  asked about at most once a day however often a vibe names it.
- `vibe_groundings`: each vibe's tag-grounded vector, cached by normalised vibe text together
  with the inputs' marks (tags generation, newest embedding, model) it was computed from.
"""

from __future__ import annotations

from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from haunt_fm.db.base import EMBEDDING_DIM, Base
from haunt_fm.queue import Stage


class TrackTag(Base):
    __tablename__ = "track_tags"

    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    weight: Mapped[int] = mapped_column(SmallInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("weight BETWEEN 0 AND 100", name="weight"),
        # A tag's tracks, heaviest first (the vibe centroid takes the heaviest ones).
        Index("ix_track_tags_tag", "tag", "weight", "track_id"),
    )


class TagLookup(Base):
    """The last `tag.getTopTracks` asked for one (normalised) tag."""

    __tablename__ = "tag_lookups"

    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tracks: Mapped[int] = mapped_column(Integer)
    candidates_new: Mapped[int] = mapped_column(Integer)


class VibeGrounding(Base):
    """A vibe's tag-grounded vector (None: no embedded track carries its tags), by normalised text."""

    __tablename__ = "vibe_groundings"

    vibe_norm: Mapped[str] = mapped_column(Text, primary_key=True)
    model: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text))
    tag_tracks: Mapped[int] = mapped_column(Integer)
    # The tags whose charts would grow the library toward it (empty when enough tracks stand behind it).
    lookups: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # How tightly the tracks behind it agree (the smallest, over its tags, weighted mean resultant
    # length of their unit vectors: ~1 one sound, ~0 spread everywhere); None without tracks.
    coherence: Mapped[float | None] = mapped_column(Float)
    embedding: Mapped[list[float] | None] = mapped_column(Vector(EMBEDDING_DIM))
    # The inputs it was computed from: stale when the tags generation or the newest embedding moved.
    tags_generation: Mapped[int] = mapped_column(BigInteger)
    embeddings_mark: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# Tracks whose tags are due: listened first (a profile's tags), then candidates by summed match.
TAGS_STAGE = Stage(
    name="tags",
    table="tracks",
    prefix="tags_",
    order_by="listened DESC, discovery_score DESC",
    returning=("t.artist", "t.title"),
)

# The job that asks Last.fm for a tag's top tracks (key: the normalised tag).
TAG_LOOKUP_JOB = "tag_top_tracks"
