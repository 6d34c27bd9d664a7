"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

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
