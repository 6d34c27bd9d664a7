"""The Alembic migrations build exactly the schema the models describe, on both databases,
and carry the data of a database made by an earlier revision."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from storage.db import is_postgresql, make_engine
from storage.migrate import MIGRATION_LOCK_ID, upgrade
from storage.models import Base
from tests.support.polling import wait_until
from tests.support.processes import ROOT, downvote_env


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
                " latency_ms, occurred_at, received_at)"
                " VALUES (1, 1, 'e1', 'down', '\"p\"', 'r', 812.5, :at, :at)"
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
        # 0006 indexed the rows already there: a period's criteria still find them.
        in_period = text(
            "SELECT count(*), count(latency_ms) FROM feedback_events"
            " WHERE occurred_at >= :start AND occurred_at < :end"
        )
        period = {"start": at, "end": at + timedelta(days=1)}
        assert tuple(connection.execute(in_period, period).one()) == (1, 1)
        if is_postgresql(empty_database_url):  # Alembic does not compare INCLUDE columns
            covering = text(
                "SELECT indexdef FROM pg_indexes"
                " WHERE indexname = 'ix_feedback_events_occurred_at_covering'"
            )
            assert connection.execute(covering).scalar_one().endswith(" INCLUDE (id)")
        else:  # from the index alone
            plan = connection.execute(text(f"EXPLAIN QUERY PLAN {in_period}"), period).all()
            assert "COVERING INDEX ix_feedback_events_occurred_at_covering" in str(plan)
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_replicas_upgrading_an_empty_database_at_once_both_succeed(
    empty_database_url: str,
) -> None:
    """Two `downvote db upgrade` processes at once on a new database: one migrates, one waits
    for it (on PostgreSQL behind an advisory lock), and both succeed. Processes, not threads:
    Alembic keeps its migration context in module globals."""
    env = downvote_env(empty_database_url)
    ready = "import sys; from bot.cli import main; sys.stdin.readline(); main(['db', 'upgrade'])"
    both = [
        subprocess.Popen(
            [sys.executable, "-c", ready],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in both:  # imports done in each: start them in the same instant
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = [process.communicate(timeout=120) for process in both]
    assert [process.returncode for process in both] == [0, 0], results
    engine = make_engine(empty_database_url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_on_postgresql_an_upgrade_waits_for_the_migration_lock(empty_database_url: str) -> None:
    """Deterministically: while another process holds the lock, `db upgrade` only waits."""
    if not is_postgresql(empty_database_url):
        pytest.skip("the advisory lock is PostgreSQL's; SQLite serialises writers itself")
    holder = make_engine(empty_database_url)
    with holder.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        upgrading = subprocess.Popen(
            [sys.executable, "-c", "from bot.cli import main; main(['db', 'upgrade'])"],
            env=downvote_env(empty_database_url), cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        wait_until(lambda: connection.execute(waiting).scalar(), "the upgrade to wait for the lock")
        tables = text("SELECT count(*) FROM information_schema.tables WHERE table_name = 'apps'")
        assert connection.execute(tables).scalar() == 0  # it has not migrated meanwhile
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
        out, err = upgrading.communicate(timeout=60)
    holder.dispose()
    assert upgrading.returncode == 0, err
    assert "up to date" in out


def test_postgresql_options_in_the_database_url_are_kept(database_url: str) -> None:
    """A DATABASE_URL's `?options=` (e.g. a search_path) must survive Downvote's own options."""
    if not is_postgresql(database_url):
        pytest.skip("PostgreSQL connection options")
    engine = make_engine(f"{database_url}?options=-c%20statement_timeout%3D4321")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "4321ms"
            assert connection.execute(text("SHOW jit")).scalar() == "off"
    finally:
        engine.dispose()
