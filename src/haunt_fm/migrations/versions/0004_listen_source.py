"""listen_events.source: where a listen came from (webhook, ha_history, lastfm, listenbrainz)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "listen_events", sa.Column("source", sa.Text(), server_default=sa.text("'webhook'"), nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_listen_events_source"),
        "listen_events",
        "source IN ('webhook', 'ha_history', 'lastfm', 'listenbrainz')",
    )


def downgrade() -> None:
    op.drop_constraint("ck_listen_events_source", "listen_events", type_="check")
    op.drop_column("listen_events", "source")
