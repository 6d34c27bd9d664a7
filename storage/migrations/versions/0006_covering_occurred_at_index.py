"""the occurred_at index covers the columns criteria read

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Replaces ix_feedback_events_occurred_at (its first column), so an event still costs one entry
# in an index on occurred_at, only a wider one; see FeedbackEvent in storage/models.py.
COVERING = ["occurred_at", "app_id", "model", "feature", "rating", "latency_ms", "confidence"]


def upgrade() -> None:
    op.create_index(
        "ix_feedback_events_occurred_at_covering",
        "feedback_events",
        COVERING,
        postgresql_include=["id"],  # SQLite's indexes all hold the id
    )
    op.drop_index("ix_feedback_events_occurred_at", table_name="feedback_events")


def downgrade() -> None:
    op.create_index("ix_feedback_events_occurred_at", "feedback_events", ["occurred_at"])
    op.drop_index("ix_feedback_events_occurred_at_covering", table_name="feedback_events")
