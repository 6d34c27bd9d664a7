"""The Alembic migrations build exactly the schema the models describe, on both databases,
and carry the data of a database made by an earlier revision."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from storage.db import make_engine
from storage.migrate import upgrade
from storage.models import Base


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    upgrade(database_url)  # a second upgrade is a no-op
    engine = make_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_a_v04_database_with_data_upgrades_to_head(empty_database_url: str) -> None:
    """Teams run 0001 today: their rows survive every later revision, with sane new columns."""
    upgrade(empty_database_url, revision="0001")
    engine = make_engine(empty_database_url)
    at = datetime(2026, 11, 20, 9, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO apps (id, name, channel, created_at) VALUES (1, 'shop', NULL, :at)"),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO feedback_events (id, app_id, external_id, rating, prompt, response,"
                " occurred_at, received_at) VALUES (1, 1, 'e1', 'down', '\"p\"', 'r', :at, :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO summary_posts (kind, period_start, generation, status, forced,"
                " slack_channel, slack_ts) VALUES ('weekly', '2026-11-16', 0, 'posted', false,"
                " 'C0QUALITY1', '1700000000.000100')"
            )
        )
    upgrade(empty_database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT external_id FROM feedback_events")).all() == [
            ("e1",)
        ]
        posting = connection.execute(
            text("SELECT status, slack_ts, parts_posted, chart_pending FROM summary_posts")
        ).one()
        assert tuple(posting) == ("posted", "1700000000.000100", 0, False)
        assert connection.execute(text("SELECT count(*) FROM slack_channels")).scalar() == 0
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []
