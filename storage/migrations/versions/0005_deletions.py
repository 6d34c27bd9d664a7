"""deletions: Slack messages to delete (a durable outbox), and a record of each deletion

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        # The thread an alert's parts went into, when not its own (a group's, a spike's).
        batch.add_column(sa.Column("slack_thread_ts", sa.String(length=40), nullable=True))
    op.create_table(
        "slack_deletions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", BIG_ID, nullable=False),
        sa.Column("channel_id", sa.String(length=100), nullable=False),
        sa.Column("ts", sa.String(length=40), nullable=False),
        sa.Column("thread_ts", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_deletions")),
        sa.UniqueConstraint("channel_id", "ts", name="uq_slack_deletions_channel_id_ts"),
    )
    op.create_index(
        "ix_slack_deletions_status_next_attempt_at",
        "slack_deletions",
        ["status", "next_attempt_at"],
    )
    op.create_table(
        "data_deletions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("app_id", BIG_ID, nullable=True),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("slack_messages", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_data_deletions_app_id_apps"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_deletions")),
    )


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("slack_thread_ts")
    op.drop_table("data_deletions")
    op.drop_index("ix_slack_deletions_status_next_attempt_at", table_name="slack_deletions")
    op.drop_table("slack_deletions")
