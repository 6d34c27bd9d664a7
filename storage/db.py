"""Engine and session factory: the one place that knows how to talk to each database."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")


Bind = Engine | Connection | Session | str
SQLITE, POSTGRESQL = "sqlite", "postgresql"


def backend_of(bind: Bind) -> str:
    """SQLITE or POSTGRESQL (from a URL or a connection): the one place that asks which it is."""
    if isinstance(bind, str):
        return make_url(bind).get_backend_name()
    if isinstance(bind, Session):
        return bind.get_bind().dialect.name
    return bind.dialect.name


def is_sqlite(bind: Bind) -> bool:
    """SQLite needs its own locking and pragmas."""
    return backend_of(bind) == SQLITE


def is_postgresql(bind: Bind) -> bool:
    """PostgreSQL has row locks (FOR UPDATE SKIP LOCKED) and its own JSON functions."""
    return backend_of(bind) == POSTGRESQL


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level so that SQLAlchemy's BEGIN below is the only one
    # and can be BEGIN IMMEDIATE: writers then queue on the busy timeout instead of
    # failing with "database is locked" when they upgrade a read lock.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


READ_ONLY = "downvote_read_only"
NO_WAIT = "downvote_no_wait"


def _sqlite_on_begin(connection: Connection) -> None:
    options = connection.get_execution_options()
    if options.get(READ_ONLY, False):
        # Readers take no write lock: a long summary query must not stall ingestion.
        _on_driver(connection, "BEGIN")
    elif not options.get(NO_WAIT, False):
        _on_driver(connection, "BEGIN IMMEDIATE")
    else:
        # Fail at once ("database is locked") if another process is writing, rather than
        # wait out the busy timeout; the connection's usual patience is restored either way.
        _on_driver(connection, "PRAGMA busy_timeout=0")
        try:
            _on_driver(connection, "BEGIN IMMEDIATE")
        finally:
            _on_driver(connection, f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def _on_driver(connection: Connection, statement: str) -> None:
    """Run one of BEGIN's statements on the sqlite3 connection itself: SQLAlchemy's execution
    machinery cost more than the statements (an ingest transaction: 319 -> 175 us of CPU)."""
    try:
        connection.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
    except sqlite3.Error as exc:  # the error callers expect from any statement
        raise OperationalError(statement, None, exc) from exc


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the settings each backend needs to be safe under concurrency."""
    if is_sqlite(url):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # JIT compiles the summaries' queries for ~0.5 s each and wins nothing back at our sizes.
    connect_args = dict(kwargs.pop("connect_args", {}))
    if is_postgresql(url):
        # Added to, not instead of, options given in the URL (`?options=-csearch_path%3Dx`).
        given = [make_url(url).query.get("options", ""), connect_args.get("options", "")]
        connect_args["options"] = " ".join([*(str(o) for o in given if o), "-c jit=off"])
    engine = create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args, **kwargs
    )
    _connect_args[engine] = connect_args
    return engine


# What each engine's connections were opened with beyond its URL (options such as a schema's
# search_path): other connections to the same database, made without SQLAlchemy, need it too.
_connect_args: weakref.WeakKeyDictionary[Engine, dict[str, Any]] = weakref.WeakKeyDictionary()


def connect_args_of(engine: Engine) -> dict[str, Any]:
    """The driver's keyword arguments for a connection like the engine's (URL and options)."""
    _, from_url = engine.dialect.create_connect_args(engine.url)
    from_url.pop("context", None)  # SQLAlchemy's own adapters, for its own connections
    return {**from_url, **_connect_args.get(engine, {})}


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose rows expire on commit: query functions hand out frozen views, not rows."""
    return sessionmaker(engine)


_write_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_write_locks_guard = threading.Lock()


def write_lock(engine: Engine) -> AbstractContextManager[Any]:
    """Queue this process's SQLite writers on a lock rather than on SQLite's busy handler.

    SQLite allows one writer; its busy handler retries with sleeps of up to 100 ms, so threads
    racing for the write lock waste most of their time asleep. PostgreSQL needs no such gate.
    """
    if not is_sqlite(engine):
        return nullcontext()
    return _sqlite_write_lock(engine)


def _sqlite_write_lock(engine: Engine) -> threading.Lock:
    with _write_locks_guard:
        return _write_locks.setdefault(engine, threading.Lock())


class WriterBusy(Exception):
    """Another thread or process is writing to the SQLite database at this moment."""


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    engine = sessions.kw["bind"]
    if not isinstance(engine, Engine):
        raise TypeError("sessionmaker is not bound to an Engine")
    return engine


def transact(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction (behind the SQLite write gate) and commit it."""
    with write_lock(engine_of(sessions)), sessions.begin() as session:
        return work(session)


def transact_on_connection(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`transact` on a bare connection: no Session to set up and tear down (ingest's writes,
    where that was a third of a small transaction's CPU)."""
    with write_lock(engine), engine.begin() as connection:
        return work(connection)


def transact_now(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Like `transact_on_connection`, on SQLite, but raise WriterBusy at once instead of
    waiting for the write lock: for the event loop's own thread, which must never block on
    another writer."""
    if not is_sqlite(engine):
        raise TypeError("transact_now is for SQLite, whose writes do no network I/O")
    lock = _sqlite_write_lock(engine)
    if not lock.acquire(blocking=False):
        raise WriterBusy("another thread of this process is writing")
    try:
        with engine.connect() as connection:
            connection.execution_options(**{NO_WAIT: True})
            try:
                transaction = connection.begin()
            except OperationalError as exc:  # SQLITE_BUSY: another process holds the lock
                raise WriterBusy(str(exc.orig)) from exc
            with transaction:
                return work(connection)
    finally:
        lock.release()


def in_autocommit(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work`, a statement atomic by itself, on a connection in autocommit: committed when
    it returns, with no BEGIN or COMMIT round trip (PostgreSQL: SQLite's writers must queue on
    BEGIN IMMEDIATE, in `transact_on_connection`)."""
    if is_sqlite(engine):
        raise TypeError("SQLite's writers queue on BEGIN IMMEDIATE: use transact_on_connection")
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        return work(connection)


def read(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run read-only `work` in one transaction that holds no write lock."""
    with sessions() as session:
        session.connection(execution_options={READ_ONLY: True})
        return work(session)


async def transact_in_thread(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """`transact` off the event loop: the database never blocks Slack calls or HTTP requests."""
    return await asyncio.to_thread(transact, sessions, work)


async def read_in_thread(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """`read` off the event loop."""
    return await asyncio.to_thread(read, sessions, work)


def dialect_insert(session: Session, table: type[DeclarativeBase] | Table) -> Any:
    """The session's dialect's INSERT, which knows ON CONFLICT."""
    insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    return insert(table)


def insert_ignoring_conflicts(session: Session, table: type[DeclarativeBase] | Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect; add values and RETURNING."""
    return dialect_insert(session, table).on_conflict_do_nothing()


def insert_if_new(session: Session, table: type[DeclarativeBase], row: dict[str, object]) -> bool:
    """Insert one row unless a unique key already holds it; True when it is new.

    RETURNING, not rowcount: psycopg reports -1 rows for an INSERT that did nothing.
    """
    key = next(iter(table.__table__.primary_key.columns))  # type: ignore[attr-defined]
    statement = insert_ignoring_conflicts(session, table).values(**row).returning(key)
    return session.execute(statement).first() is not None
