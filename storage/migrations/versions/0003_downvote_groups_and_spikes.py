"""downvote groups, their LSH bands and members; spikes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index(
        "ix_feedback_events_app_id_rating_received_at",
        "feedback_events",
        ["app_id", "rating", "received_at"],
    )
    op.create_table(
        "downvote_groups",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("app_id", BIG_ID, nullable=False),
        sa.Column("head_event_id", BIG_ID, nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_group_id", BIG_ID, nullable=True),
        sa.Column("suggestion", sa.JSON(), nullable=True),
        sa.Column("slack_channel_id", sa.String(length=100), nullable=True),
        sa.Column("slack_ts", sa.String(length=40), nullable=True),
        sa.Column("slack_thread_ts", sa.String(length=40), nullable=True),
        sa.Column("refresh_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_downvote_groups_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["head_event_id"], ["feedback_events.id"],
            name=op.f("fk_downvote_groups_head_event_id_feedback_events"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["previous_group_id"], ["downvote_groups.id"],
            name=op.f("fk_downvote_groups_previous_group_id_downvote_groups"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_downvote_groups")),
        sa.UniqueConstraint("head_event_id", name=op.f("uq_downvote_groups_head_event_id")),
    )
    op.create_index(
        "ix_downvote_groups_app_id_last_seen_at", "downvote_groups", ["app_id", "last_seen_at"]
    )
    op.create_table(
        "group_members",
        sa.Column("event_id", BIG_ID, nullable=False),
        sa.Column("group_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["feedback_events.id"],
            name=op.f("fk_group_members_event_id_feedback_events"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["downvote_groups.id"],
            name=op.f("fk_group_members_group_id_downvote_groups"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_group_members")),
    )
    op.create_index(op.f("ix_group_members_group_id"), "group_members", ["group_id"])
    op.create_table(
        "group_bands",
        sa.Column("group_id", BIG_ID, nullable=False),
        sa.Column("band", sa.BigInteger(), nullable=False),
        sa.Column("app_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_group_bands_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["downvote_groups.id"],
            name=op.f("fk_group_bands_group_id_downvote_groups"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "band", name=op.f("pk_group_bands")),
    )
    op.create_index("ix_group_bands_app_id_band", "group_bands", ["app_id", "band"])
    op.create_table(
        "spikes",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("app_id", BIG_ID, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("below_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("peak", sa.Integer(), nullable=False),
        sa.Column("slack_channel_id", sa.String(length=100), nullable=True),
        sa.Column("slack_ts", sa.String(length=40), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_spikes_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spikes")),
    )
    op.create_index(
        "uq_spikes_open_app_id", "spikes", ["app_id"], unique=True,
        sqlite_where=sa.text("ended_at IS NULL"), postgresql_where=sa.text("ended_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_spikes_open_app_id", table_name="spikes")
    op.drop_table("spikes")
    op.drop_index("ix_group_bands_app_id_band", table_name="group_bands")
    op.drop_table("group_bands")
    op.drop_index(op.f("ix_group_members_group_id"), table_name="group_members")
    op.drop_table("group_members")
    op.drop_index("ix_downvote_groups_app_id_last_seen_at", table_name="downvote_groups")
    op.drop_table("downvote_groups")
    op.drop_index("ix_feedback_events_app_id_rating_received_at", table_name="feedback_events")
