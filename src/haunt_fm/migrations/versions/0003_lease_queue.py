"""one lease queue: owner tokens for every stage, discovery and vibe-text leases, jobs, play counts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Preview lookup: the lease owner is the claim's token (it used to be the lease timestamp).
    op.add_column("tracks", sa.Column("preview_lease_owner", sa.Text(), nullable=True))
    # Discovery seeds are claimed like every other stage's work.
    op.add_column(
        "tracks", sa.Column("discovery_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("tracks", sa.Column("discovery_error", sa.Text(), nullable=True))
    op.add_column("tracks", sa.Column("discovery_next_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tracks", sa.Column("discovery_lease_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tracks", sa.Column("discovery_lease_owner", sa.Text(), nullable=True))
    # Seeds are expanded most played first.
    op.add_column(
        "tracks", sa.Column("play_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("tracks", sa.Column("last_played_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """
        UPDATE tracks t SET play_count = s.n, last_played_at = s.last
        FROM (SELECT track_id, count(*) AS n, max(played_at) AS last FROM listen_events GROUP BY track_id) s
        WHERE s.track_id = t.id
        """
    )
    op.create_index(
        "ix_tracks_discovery_queue",
        "tracks",
        ["lastfm_expanded_at", "play_count"],
        unique=False,
        postgresql_where=sa.text("listened"),
    )

    # Vibe texts: leased like tracks instead of a row lock held during inference.
    op.add_column(
        "text_embeddings", sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("text_embeddings", sa.Column("next_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("text_embeddings", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("text_embeddings", sa.Column("lease_owner", sa.Text(), nullable=True))
    op.create_index(
        "ix_text_embeddings_queue",
        "text_embeddings",
        ["requested_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column("progress", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(
        "uq_jobs_pending_key",
        "jobs",
        ["kind", "key"],
        unique=True,
        postgresql_where=sa.text("status = 'pending' AND key IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_queue", "jobs", ["next_at"], unique=False, postgresql_where=sa.text("status = 'pending'")
    )
    op.create_index("ix_jobs_kind_created", "jobs", ["kind", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_kind_created", table_name="jobs")
    op.drop_index("ix_jobs_queue", table_name="jobs", postgresql_where=sa.text("status = 'pending'"))
    op.drop_index(
        "uq_jobs_pending_key",
        table_name="jobs",
        postgresql_where=sa.text("status = 'pending' AND key IS NOT NULL"),
    )
    op.drop_table("jobs")
    op.drop_index(
        "ix_text_embeddings_queue",
        table_name="text_embeddings",
        postgresql_where=sa.text("status = 'pending'"),
    )
    for column in ("lease_owner", "lease_until", "next_at", "attempts"):
        op.drop_column("text_embeddings", column)
    op.drop_index("ix_tracks_discovery_queue", table_name="tracks", postgresql_where=sa.text("listened"))
    for column in (
        "last_played_at",
        "play_count",
        "discovery_lease_owner",
        "discovery_lease_until",
        "discovery_next_at",
        "discovery_error",
        "discovery_attempts",
        "preview_lease_owner",
    ):
        op.drop_column("tracks", column)
