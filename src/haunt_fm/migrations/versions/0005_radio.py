"""radios and radio_tracks: endless radio on a speaker; listens poke the speaker's active radio

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A listen stored with a speaker makes that speaker's active radio due now and wakes the radio
# runners (see pipeline/radio/models.py). One probe of uq_radios_active_speaker per listen.
_POKE_FUNCTION = """
CREATE FUNCTION radio_poke() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE radios SET pokes = pokes + 1, work_next_at = now()
    WHERE active AND speaker_entity = lower(NEW.speaker_entity);
    IF FOUND THEN
        PERFORM pg_notify('haunt_fm_work', 'radio');
    END IF;
    RETURN NULL;
END
$$
"""
_POKE_TRIGGER = """
CREATE TRIGGER listen_events_radio_poke AFTER INSERT ON listen_events
FOR EACH ROW WHEN (NEW.speaker_entity IS NOT NULL) EXECUTE FUNCTION radio_poke()
"""


def upgrade() -> None:
    op.create_table(
        "radios",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("speaker_entity", sa.Text(), nullable=False),
        sa.Column("profile_id", sa.BigInteger(), nullable=False),
        sa.Column("vibe", sa.Text(), nullable=True),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("known_pct", sa.Float(), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.Text(), nullable=True),
        sa.Column("ended_detail", sa.Text(), nullable=True),
        sa.Column("last_heard_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("listen_cursor", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("pokes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("work_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("work_error", sa.Text(), nullable=True),
        sa.Column("work_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("work_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("work_lease_owner", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "ended_reason IS NULL OR ended_reason IN "
            "('stopped', 'replaced', 'outside', 'silent', 'exhausted', 'failed')",
            name=op.f("ck_radios_ended_reason"),
        ),
        sa.CheckConstraint("active = (ended_at IS NULL)", name=op.f("ck_radios_ended")),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_radios_profile_id_profiles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_radios")),
    )
    op.create_index(
        "uq_radios_active_speaker",
        "radios",
        ["speaker_entity"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    op.create_index("ix_radios_queue", "radios", ["work_next_at"], postgresql_where=sa.text("active"))
    op.create_index("ix_radios_started", "radios", ["started_at"])

    op.create_table(
        "radio_tracks",
        sa.Column("radio_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("send_status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("send_error", sa.Text(), nullable=True),
        sa.Column("played_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("heard_duration_s", sa.Integer(), nullable=True),
        sa.Column("skipped", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint("kind IN ('known', 'new')", name=op.f("ck_radio_tracks_kind")),
        sa.CheckConstraint(
            "send_status IN ('pending', 'queued', 'failed')", name=op.f("ck_radio_tracks_send_status")
        ),
        sa.ForeignKeyConstraint(
            ["radio_id"], ["radios.id"], name=op.f("fk_radio_tracks_radio_id_radios"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["track_id"], ["tracks.id"], name=op.f("fk_radio_tracks_track_id_tracks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("radio_id", "position", name=op.f("pk_radio_tracks")),
        sa.UniqueConstraint("radio_id", "track_id", name=op.f("uq_radio_tracks_radio_track")),
    )
    op.create_index("ix_radio_tracks_track", "radio_tracks", ["track_id"])

    op.execute(_POKE_FUNCTION)
    op.execute(_POKE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS listen_events_radio_poke ON listen_events")
    op.execute("DROP FUNCTION IF EXISTS radio_poke()")
    op.drop_index("ix_radio_tracks_track", table_name="radio_tracks")
    op.drop_table("radio_tracks")
    op.drop_index("ix_radios_started", table_name="radios")
    op.drop_index("ix_radios_queue", table_name="radios", postgresql_where=sa.text("active"))
    op.drop_index("uq_radios_active_speaker", table_name="radios", postgresql_where=sa.text("active"))
    op.drop_table("radios")
