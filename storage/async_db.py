"""PostgreSQL connections the event loop writes on itself, without handing work to a thread.

A thread that writes needs the GIL back after each round trip, and a busy event loop holds it
for up to the 5 ms switch interval: with groups written on threads, single-event ingest on
PostgreSQL ran in lock-step, the loop idle while a group's statement ran. Written from the loop
with psycopg's async connections, one group's statement runs while the loop reads the next
group's requests. SQLite needs none of this: its writes do no network I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from psycopg import AsyncConnection, OperationalError
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine

from storage.db import connect_args_of, is_postgresql

# How long a write waits for a free connection (all of them busy, or the database restarting)
# before it fails with PoolTimeout (answered 503): a request that cannot be stored must get an
# answer, not hang. A statement takes milliseconds; a restart, seconds.
CONNECTION_WAIT_SECONDS = 5.0

INGEST_APPLICATION_NAME = "downvote-ingest"

AsyncPool = AsyncConnectionPool[AsyncConnection]
T = TypeVar("T")


@asynccontextmanager
async def async_pool(engine: Engine, size: int) -> AsyncIterator[AsyncPool]:
    """`size` connections in autocommit to the engine's database, for the running event loop.

    A pool belongs to the loop it was opened on, so it is opened and closed inside the app's
    lifespan. Connections are not checked before each use, unlike the engine's (pre-ping):
    that round trip cost 16% of single-event throughput. `on_a_live_connection` copes with
    the dead ones a database restart leaves.
    """
    if not is_postgresql(engine):
        raise TypeError("async writes are for PostgreSQL; SQLite's writes do no network I/O")
    # Named, so that an operator can tell them in pg_stat_activity (unless the URL names them).
    connect = {"application_name": INGEST_APPLICATION_NAME, **connect_args_of(engine)}
    pool: AsyncPool = AsyncConnectionPool(
        kwargs={**connect, "autocommit": True},
        min_size=size,
        max_size=size,
        open=False,
        timeout=CONNECTION_WAIT_SECONDS,
        name="ingest",
    )
    await pool.open()
    try:
        yield pool
    finally:
        await pool.close()


async def on_a_live_connection(
    pool: AsyncPool, work: Callable[[AsyncConnection], Awaitable[T]]
) -> T:
    """`work` on one of the pool's connections; if that connection is dead (the database
    restarted since it was opened), once more on a live one, after the pool has checked its
    idle connections and replaced the dead.

    `work` must be safe to repeat: a statement the dead connection did commit runs again.
    (Ingest's is: its events keep their ids, and ON CONFLICT stores each once.)
    """
    async with pool.connection() as connection:
        try:
            return await work(connection)
        except OperationalError:
            if not connection.broken:
                raise
    # Returned broken, the connection is discarded and a new one is being opened.
    await pool.check()
    async with pool.connection() as connection:
        return await work(connection)
