"""Group commit: requests that arrive while a transaction is being written share the next one.

One commit then answers many requests, which is what makes single-event ingest fast on SQLite
(one writer at a time) and cheap on PostgreSQL. No request is answered before its transaction
has committed, so an accepted event is never lost; a request waits at most for the transactions
in flight before its own. PostgreSQL commits several transactions at once, so there up to
`concurrency` groups are written in parallel: one group's commit no longer idles the next.

How a group is written is the caller's: a coroutine, awaited on the event loop. PostgreSQL's
writes are awaited there directly (storage.async_db). `on_writer_threads` runs a blocking write
on threads of its own instead, or, when `write_now` will take it, on the loop's thread at once:
handing a group to a thread and back costs two GIL hand-offs, each a wait of up to the
interpreter's 5 ms switch interval while the other thread runs; on SQLite, whose writes do no
network I/O, that was most of a request's time under load. `write_now` declines (returns None)
whatever could make the loop wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_ITEMS_PER_TRANSACTION = 200


class GroupCommitter(Generic[Item, Result]):
    """Feeds queued items, a group at a time, to `write`, which must return one result each."""

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[list[Result]]],
        max_items: int = MAX_ITEMS_PER_TRANSACTION,
        concurrency: int = 1,
    ) -> None:
        self._write = write
        self._max_items = max_items
        self._concurrency = concurrency
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._drainers: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        # Forget drainers that found the queue empty and ended.
        self._drainers = {d for d in self._drainers if not d.done()}
        if len(self._drainers) < self._concurrency:
            self._drainers.add(asyncio.create_task(self._drain()))
        return await future

    async def _drain(self) -> None:
        while self._queue:
            # One pass of the event loop first, so requests already received join this group:
            # fewer, bigger transactions (bench-ingest: +19% req/s on SQLite, +31% on PostgreSQL).
            await asyncio.sleep(0)
            if not self._queue:  # another drainer took them
                break
            group, self._queue = self._queue[: self._max_items], self._queue[self._max_items :]
            try:
                results = await self._write([item for item, _ in group])
            except Exception as exc:
                if len(group) == 1:
                    _settle(group[0][1], exception=exc)
                    continue
                # One bad item must not fail its neighbours: write each alone to find it.
                for item, future in group:
                    try:
                        [result] = await self._write([item])
                    except Exception as item_exc:
                        _settle(future, exception=item_exc)
                    else:
                        _settle(future, result=result)
                continue
            for (_, future), result in zip(group, results, strict=True):
                _settle(future, result=result)


def on_writer_threads(
    write: Callable[[Sequence[Item]], list[Result]],
    threads: int,
    write_now: Callable[[Sequence[Item]], list[Result] | None] | None = None,
) -> Callable[[Sequence[Item]], Awaitable[list[Result]]]:
    """A blocking `write` as a GroupCommitter's coroutine: run on `threads` threads of its own,
    unless `write_now` takes the group at once on the loop's thread (returns its results)."""
    # A plain executor hands work over with less overhead than AnyIO's shared pool (which also
    # serves sync routes).
    writer = ThreadPoolExecutor(threads, thread_name_prefix="ingest-writer")

    async def run(items: Sequence[Item]) -> list[Result]:
        if write_now is not None:
            results = write_now(items)
            if results is not None:
                return results
        return await asyncio.get_running_loop().run_in_executor(writer, write, items)

    return run


def _settle(
    future: asyncio.Future[Result],
    *,
    result: Result | None = None,
    exception: Exception | None = None,
) -> None:
    if future.done():  # the request went away (client disconnected)
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)  # type: ignore[arg-type]
