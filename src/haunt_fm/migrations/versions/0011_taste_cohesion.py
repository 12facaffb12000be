"""How near its own tracks each taste lies (profile_tastes.cohesion): the index search's check

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL for tastes built before: the taste stage treats them as stale and rebuilds them on
    # next use (pipeline/taste/repository.py, freshness).
    op.add_column("profile_tastes", sa.Column("cohesion", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("profile_tastes", "cohesion")
