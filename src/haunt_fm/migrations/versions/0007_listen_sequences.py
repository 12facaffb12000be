"""speaker sequences and groups: the speaker a listen played on (for resume and group rules),
the groups seen, and a per-track listen version (where a listen came from is migration 0004)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The speaker a listen played on (its entity id, else its name), normalised like the speaker
    # mapping: each speaker's listens in order, for the resume and group rules.
    op.add_column("listen_events", sa.Column("speaker_key", sa.Text(), nullable=True))
    op.execute(
        "UPDATE listen_events SET speaker_key = lower(regexp_replace(btrim(coalesce("
        "nullif(btrim(speaker_entity), ''), nullif(btrim(speaker_name), ''))), '\\s+', ' ', 'g')) "
        "WHERE coalesce(speaker_entity, speaker_name) IS NOT NULL"
    )
    op.create_index(
        "ix_listen_events_speaker_played",
        "listen_events",
        ["speaker_key", "played_at"],
        unique=False,
        postgresql_where=sa.text("speaker_key IS NOT NULL"),
    )
    # Bumped by every statement that adds or removes a listen of the track: a listen decided
    # on a snapshot is stored only when the version it read is still the latest.
    op.add_column(
        "tracks", sa.Column("listen_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
    )
    op.create_table(
        "speaker_groups",
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("member_key", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("group_key", "member_key", name=op.f("pk_speaker_groups")),
    )
    op.create_index("ix_speaker_groups_member", "speaker_groups", ["member_key"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_speaker_groups_member", table_name="speaker_groups")
    op.drop_table("speaker_groups")
    op.drop_column("tracks", "listen_seq")
    op.drop_index(
        "ix_listen_events_speaker_played",
        table_name="listen_events",
        postgresql_where=sa.text("speaker_key IS NOT NULL"),
    )
    op.drop_column("listen_events", "speaker_key")
