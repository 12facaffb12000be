"""Several tastes per profile (profile_tastes) and skipped listens (listen_events.skipped)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Listens already stored get the skip rule of pipeline/listens/rules.py, applied once in SQL:
# a listen is skipped when the next listen on the same speaker started less than
# min(30 s, half its duration) after it (duration: the webhook's, else the track's, else 30 s).
_MARK_EXISTING_SKIPS = """
WITH seq AS (
    SELECT e.id, e.played_at,
           lead(e.played_at) OVER (PARTITION BY e.speaker_key ORDER BY e.played_at, e.id) AS next_at,
           coalesce(e.duration_s, t.duration_ms / 1000.0) AS duration_s
    FROM listen_events e JOIN tracks t ON t.id = e.track_id
    WHERE e.speaker_key IS NOT NULL
)
UPDATE listen_events e SET skipped = true
FROM seq
WHERE e.id = seq.id AND seq.next_at IS NOT NULL
  AND extract(epoch FROM seq.next_at - seq.played_at) >= 0
  AND extract(epoch FROM seq.next_at - seq.played_at)
      < CASE WHEN seq.duration_s IS NULL OR seq.duration_s <= 0 THEN 30
             ELSE least(30, seq.duration_s / 2.0) END
"""


def upgrade() -> None:
    op.add_column(
        "listen_events", sa.Column("skipped", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.execute(_MARK_EXISTING_SKIPS)

    op.create_table(
        "profile_tastes",
        sa.Column("profile_id", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("centroid", Vector(512), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("tracks", sa.Integer(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("top_artists", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_profile_tastes_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", "idx", name=op.f("pk_profile_tastes")),
    )
    # Known favourites rotate: "which tracks were in the profile's last playlist?"
    op.create_index("ix_playlists_profile_id", "playlists", ["profile_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_playlists_profile_id", table_name="playlists")
    op.drop_table("profile_tastes")
    op.drop_column("listen_events", "skipped")
