"""tags: track_tags, tag lookups, tag-grounded vibe vectors, the tags stage; the model of a taste

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The tags stage's queue columns (every existing track is due once).
    op.add_column(
        "tracks", sa.Column("tags_status", sa.String(length=16), server_default="pending", nullable=False)
    )
    op.add_column(
        "tracks", sa.Column("tags_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("tracks", sa.Column("tags_error", sa.Text(), nullable=True))
    op.add_column("tracks", sa.Column("tags_next_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tracks", sa.Column("tags_lease_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tracks", sa.Column("tags_lease_owner", sa.Text(), nullable=True))
    op.add_column("tracks", sa.Column("tags_fetched_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_tracks_tags_queue",
        "tracks",
        ["listened", "discovery_score"],
        unique=False,
        postgresql_where=sa.text("tags_status = 'pending'"),
    )
    # "tag:<tag>" does not fit 16 characters; varchar -> text is not a rewrite.
    op.alter_column(
        "tracks", "source", existing_type=sa.String(length=16), type_=sa.Text(), existing_nullable=False
    )

    # A taste built from one model's vectors is stale under another. Left NULL here: every
    # existing taste is rebuilt once, from the current model's vectors only, on its next use.
    op.add_column("profiles", sa.Column("taste_model", sa.Text(), nullable=True))
    op.create_index("ix_track_embeddings_model", "track_embeddings", ["model"], unique=False)

    op.create_table(
        "track_tags",
        sa.Column("track_id", sa.BigInteger(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("weight", sa.SmallInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("weight BETWEEN 0 AND 100", name=op.f("ck_track_tags_weight")),
        sa.ForeignKeyConstraint(
            ["track_id"], ["tracks.id"], name=op.f("fk_track_tags_track_id_tracks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("track_id", "tag", name=op.f("pk_track_tags")),
    )
    op.create_index("ix_track_tags_tag", "track_tags", ["tag", "weight", "track_id"], unique=False)
    op.create_table(
        "tag_lookups",
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tracks", sa.Integer(), nullable=False),
        sa.Column("candidates_new", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tag", name=op.f("pk_tag_lookups")),
    )
    op.create_table(
        "vibe_groundings",
        sa.Column("vibe_norm", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("tag_tracks", sa.Integer(), nullable=False),
        sa.Column("lookups", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("coherence", sa.Float(), nullable=True),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(dim=512), nullable=True),
        sa.Column("tags_generation", sa.BigInteger(), nullable=False),
        sa.Column("embeddings_mark", sa.DateTime(timezone=True), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("vibe_norm", name=op.f("pk_vibe_groundings")),
    )


def downgrade() -> None:
    op.drop_table("vibe_groundings")
    op.drop_table("tag_lookups")
    op.drop_index("ix_track_tags_tag", table_name="track_tags")
    op.drop_table("track_tags")
    op.drop_index("ix_track_embeddings_model", table_name="track_embeddings")
    op.drop_column("profiles", "taste_model")
    op.execute("UPDATE tracks SET source = 'lastfm' WHERE source LIKE 'tag:%'")
    op.alter_column(
        "tracks", "source", existing_type=sa.Text(), type_=sa.String(length=16), existing_nullable=False
    )
    op.drop_index(
        "ix_tracks_tags_queue", table_name="tracks", postgresql_where=sa.text("tags_status = 'pending'")
    )
    for column in (
        "tags_fetched_at",
        "tags_lease_owner",
        "tags_lease_until",
        "tags_next_at",
        "tags_error",
        "tags_attempts",
        "tags_status",
    ):
        op.drop_column("tracks", column)
