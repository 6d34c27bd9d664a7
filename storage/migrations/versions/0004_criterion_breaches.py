"""criterion breach alerts: one per criterion per day

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "criterion_breaches",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("criterion", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("slack_channel", sa.String(length=100), nullable=True),
        sa.Column("slack_ts", sa.String(length=40), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_criterion_breaches")),
        sa.UniqueConstraint("criterion", "day", name="uq_criterion_breaches_criterion_day"),
    )


def downgrade() -> None:
    op.drop_table("criterion_breaches")
