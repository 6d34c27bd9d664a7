"""slack channel ids; summary thread parts and chart

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_channels",
        sa.Column("configured", sa.String(length=100), nullable=False),
        sa.Column("channel_id", sa.String(length=40), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("configured", name=op.f("pk_slack_channels")),
    )
    with op.batch_alter_table("summary_posts") as batch:
        batch.add_column(
            sa.Column("parts_posted", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("chart_pending", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("summary_posts") as batch:
        batch.drop_column("chart_pending")
        batch.drop_column("parts_posted")
    op.drop_table("slack_channels")
