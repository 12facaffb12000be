"""track_embeddings.runtime: which audio-tower runtime (torch, onnx, onnx-int8) made a vector

Vectors from runtimes that passed the fidelity gate share one space, so switching runtime
does not re-embed; the column records provenance only.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("track_embeddings", sa.Column("runtime", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("track_embeddings", "runtime")
