"""Fresh databases for tests: a SQLite file, or a throwaway schema in the local PostgreSQL.

Which backends run follows DOWNVOTE_TEST_BACKENDS, as for conftest's `database_url`; a backend
that is asked for and unreachable fails loudly rather than being skipped unnoticed.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from storage.apps import add_app
from storage.db import make_engine, make_sessionmaker
from storage.models import App, Base, SummaryPost, TriageAudit
from tests.support.signing import utc_now

PG_URL = os.environ.get("DOWNVOTE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DATABASES = [b.strip() for b in os.environ.get("DOWNVOTE_TEST_BACKENDS", "sqlite").split(",")]


@dataclass
class RegisteredApp:
    name: str
    secret: str
    api_key: str
    app_id: int


def register_app(
    sessions: sessionmaker[Session], name: str = "support-bot", channel: str | None = None
) -> RegisteredApp:
    """An app as `downvote apps add` registers it, with its credentials."""
    with sessions.begin() as session:
        issued = add_app(session, name, channel=channel, now=utc_now())
        return RegisteredApp(name, issued.webhook_secret, issued.api_key, issued.app_id)


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


def summary_postings(session: Session, kind: str | None = None) -> list[SummaryPost]:
    """Every posting of a summary period, oldest period and generation first."""
    query = select(SummaryPost).order_by(SummaryPost.period_start, SummaryPost.generation)
    if kind is not None:
        query = query.where(SummaryPost.kind == kind)
    return list(session.scalars(query))


def audit_trail(session: Session, event_id: int) -> list[TriageAudit]:
    """The triage audit rows of one event, oldest first."""
    query = select(TriageAudit).where(TriageAudit.event_id == event_id).order_by(TriageAudit.id)
    return list(session.scalars(query))


def another_process_writing(engine: Engine) -> sqlite3.Connection:
    """A connection of its own holding SQLite's write lock, as another process would; the
    caller ends it (`rollback`, from any thread) and closes it."""
    path = engine.url.database
    assert path is not None
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder
