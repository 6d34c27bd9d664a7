"""an occurred_at index that covers the columns criteria read

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

# Beside ix_feedback_events_occurred_at, not instead of it; see FeedbackEvent in storage/models.py.
COVERING = ["occurred_at", "app_id", "model", "feature", "rating", "latency_ms", "confidence"]


def upgrade() -> None:
    op.create_index(
        "ix_feedback_events_occurred_at_covering",
        "feedback_events",
        COVERING,
        postgresql_include=["id"],  # SQLite's indexes all hold the id
    )


def downgrade() -> None:
    op.drop_index("ix_feedback_events_occurred_at_covering", table_name="feedback_events")
