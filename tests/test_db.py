"""SQLite's write gate: `transact_now` never waits for another writer, `transact` still does."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session, sessionmaker

from storage.db import WriterBusy, engine_of, is_sqlite, transact, transact_now, write_lock
from tests.support.databases import another_process_writing


@pytest.fixture
def sqlite_sessions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    if not is_sqlite(engine_of(sessions)):
        pytest.skip("transact_now is for SQLite (PostgreSQL writes wait on the network anyway)")
    return sessions


def marks(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(text("SELECT name FROM apps ORDER BY name")))


def add_mark(name: str) -> Callable[[Any], str]:
    """A write that adds an app by that name (any row would do) and returns the name."""

    def work(database: Session | Connection) -> str:
        database.execute(
            text("INSERT INTO apps (name, created_at) VALUES (:name, CURRENT_TIMESTAMP)"),
            {"name": name},
        )
        return name

    return work


def test_transact_now_refuses_at_once_while_another_process_writes_then_writes_when_free(
    sqlite_sessions: sessionmaker[Session],
) -> None:
    holder = another_process_writing(engine_of(sqlite_sessions))
    # The other process finishes after 10 s: a transact_now that waited would then write.
    finishes = threading.Timer(10, holder.rollback)
    finishes.start()
    try:
        with pytest.raises(WriterBusy, match="locked"):
            transact_now(engine_of(sqlite_sessions), add_mark("refused"))
    finally:
        finishes.cancel()
        holder.rollback()
        holder.close()
    assert transact_now(engine_of(sqlite_sessions), add_mark("written")) == "written"
    assert marks(sqlite_sessions) == ["written"]


def test_transact_now_refuses_while_another_thread_of_this_process_writes(
    sqlite_sessions: sessionmaker[Session],
) -> None:
    engine = engine_of(sqlite_sessions)
    with write_lock(engine):
        outcome: list[BaseException | str] = []

        def attempt() -> None:  # from another thread: this one holds the (non-reentrant) gate
            try:
                outcome.append(transact_now(engine_of(sqlite_sessions), add_mark("refused")))
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=attempt)
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive(), "transact_now waited for the gate"
    assert len(outcome) == 1 and isinstance(outcome[0], WriterBusy)
    assert marks(sqlite_sessions) == []


def test_after_a_refusal_the_connection_waits_for_writers_again(
    sqlite_sessions: sessionmaker[Session],
) -> None:
    """The refusal sets the busy timeout to 0 for one BEGIN; the pooled connection gets its
    30 s back, so a plain `transact` on it queues behind another process instead of failing."""
    holder = another_process_writing(engine_of(sqlite_sessions))
    with pytest.raises(WriterBusy):
        transact_now(engine_of(sqlite_sessions), add_mark("refused"))
    released = threading.Timer(0.2, holder.rollback)  # the other process finishes a moment later
    released.start()
    try:
        assert transact(sqlite_sessions, add_mark("waited")) == "waited"
    finally:
        released.join()
        holder.close()
    with sqlite_sessions() as session:
        assert session.scalar(text("PRAGMA busy_timeout")) == 30_000
    assert marks(sqlite_sessions) == ["waited"]
