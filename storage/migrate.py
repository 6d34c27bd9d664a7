"""Apply Alembic migrations, safely when several replicas start at once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

from storage.db import is_sqlite, make_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every Downvote process.
MIGRATION_LOCK_ID = 0x646F776E766F7465  # "downvote"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config that needs no alembic.ini on disk."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str, engine: Engine | None = None, revision: str = "head") -> None:
    """Bring the schema to `revision` (the newest); PostgreSQL replicas serialise on a lock."""
    own_engine = engine is None
    engine = engine or make_engine(database_url)
    try:
        _upgrade(engine, revision)
    finally:
        if own_engine:
            engine.dispose()  # closing the last SQLite connection also checkpoints the WAL


def _upgrade(engine: Engine, revision: str) -> None:
    with engine.connect() as connection:
        if is_sqlite(engine):
            # Take the write lock (BEGIN IMMEDIATE, storage/db.py) before Alembic reads the
            # version: a second process then waits and finds the schema already migrated.
            connection.begin()
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
            return
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        try:
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
