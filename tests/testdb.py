"""Fresh databases for tests: a SQLite file, or a throwaway schema in the local PostgreSQL.

Which backends run follows DOWNVOTE_TEST_BACKENDS, as for conftest's `database_url`; a backend
that is asked for and unreachable fails loudly rather than being skipped unnoticed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from storage.db import make_engine, make_sessionmaker
from storage.models import App, Base
from tests.conftest import BACKENDS, PG_ADMIN_URL

PG_URL = PG_ADMIN_URL
DATABASES = BACKENDS


@contextmanager
def fresh_engine(kind: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on empty tables, dropped afterwards."""
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
        Base.metadata.create_all(engine)
        try:
            yield engine
        finally:
            engine.dispose()
        return
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        Base.metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def fresh_session(kind: str, tmp_path: Path) -> Iterator[Session]:
    """A session on fresh tables holding one app named "chat"; the test never commits."""
    with fresh_engine(kind, tmp_path) as engine:
        make_session = make_sessionmaker(engine)
        with make_session.begin() as session:
            session.add(App(name="chat", created_at=datetime(2026, 1, 1, tzinfo=UTC)))
        with make_session() as session:
            yield session
            session.rollback()
