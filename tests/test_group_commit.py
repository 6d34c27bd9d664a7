"""Group commit: concurrent submissions share writes, get their own results, fail alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from webhooks.group_commit import GroupCommitter, on_writer_threads


async def test_concurrent_items_share_writes_and_get_their_own_results() -> None:
    writes: list[list[int]] = []
    first_write_started = threading.Event()
    release_first_write = threading.Event()

    def write(items: Sequence[int]) -> list[int]:
        writes.append(list(items))
        if len(writes) == 1:
            first_write_started.set()
            release_first_write.wait(10)
        return [item * 10 for item in items]

    committer: GroupCommitter[int, int] = GroupCommitter(on_writer_threads(write, threads=1))
    first = asyncio.create_task(committer.submit(0))
    await asyncio.to_thread(first_write_started.wait, 10)
    rest = [asyncio.create_task(committer.submit(n)) for n in range(1, 21)]
    await asyncio.sleep(0)  # let the 20 submissions queue behind the first write
    release_first_write.set()
    results = await asyncio.gather(first, *rest)
    assert results == [n * 10 for n in range(21)]
    assert writes == [[0], list(range(1, 21))]


async def test_a_failing_item_fails_alone() -> None:
    def write(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise ValueError("13 cannot be stored")
        return list(items)

    committer: GroupCommitter[int, int] = GroupCommitter(on_writer_threads(write, threads=1))
    outcomes = await asyncio.gather(
        *(committer.submit(n) for n in range(10, 16)), return_exceptions=True
    )
    assert [type(o).__name__ if isinstance(o, Exception) else o for o in outcomes] == [
        10, 11, 12, "ValueError", 14, 15,
    ]  # fmt: skip


@pytest.mark.parametrize("max_items", [1, 3])
async def test_groups_never_exceed_the_limit(max_items: int) -> None:
    sizes: list[int] = []

    def write(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        return list(items)

    committer: GroupCommitter[int, int] = GroupCommitter(
        on_writer_threads(write, threads=1), max_items=max_items
    )
    assert await asyncio.gather(*(committer.submit(n) for n in range(10))) == list(range(10))
    assert max(sizes) <= max_items


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_submissions_one_after_another_are_each_written(concurrency: int) -> None:
    """Each submission arrives just as the previous group's drainer finished: none is stranded."""
    written: list[int] = []

    def write(items: Sequence[int]) -> list[int]:
        written.extend(items)
        return list(items)

    committer: GroupCommitter[int, int] = GroupCommitter(
        on_writer_threads(write, threads=concurrency), concurrency=concurrency
    )
    for n in range(20):
        assert await asyncio.wait_for(committer.submit(n), timeout=30) == n
    assert written == list(range(20))


async def test_with_concurrency_groups_are_written_in_parallel() -> None:
    """PostgreSQL's setting: while one group's write is held, the next group is written."""
    release = threading.Event()
    first_started = threading.Event()
    writes: list[list[int]] = []

    def write(items: Sequence[int]) -> list[int]:
        writes.append(list(items))
        if items[0] == 0:
            first_started.set()
            release.wait(30)
        return list(items)

    committer: GroupCommitter[int, int] = GroupCommitter(
        on_writer_threads(write, threads=2), concurrency=2
    )
    first = asyncio.create_task(committer.submit(0))
    await asyncio.to_thread(first_started.wait, 30)
    second = await asyncio.wait_for(committer.submit(1), timeout=30)  # not behind the first
    assert second == 1 and not first.done()
    release.set()
    assert await first == 0
    assert writes == [[0], [1]]


async def test_write_now_takes_the_groups_it_can_and_the_writer_thread_the_rest() -> None:
    """SQLite's setting: a group `write_now` takes is written on the event loop's thread; one it
    declines (None) is written on the writer thread instead, and both get their results."""
    written_on: dict[int, str] = {}

    def write(items: Sequence[int]) -> list[int]:
        written_on.update((item, threading.current_thread().name) for item in items)
        return [item + 1 for item in items]

    def write_now(items: Sequence[int]) -> list[int] | None:
        return None if any(item >= 100 for item in items) else write(items)

    committer: GroupCommitter[int, int] = GroupCommitter(
        on_writer_threads(write, threads=1, write_now=write_now)
    )
    assert await committer.submit(1) == 2
    assert await committer.submit(100) == 101
    assert written_on == {1: threading.current_thread().name, 100: "ingest-writer_0"}


async def test_a_submission_made_as_the_drainer_starts_joins_its_group() -> None:
    """The drainer lets the event loop run once before taking a group, so requests received
    in the same pass (here: submitted just after the drainer was scheduled) share its commit."""
    writes: list[list[int]] = []

    def write(items: Sequence[int]) -> list[int]:
        writes.append(list(items))
        return list(items)

    committer: GroupCommitter[int, int] = GroupCommitter(on_writer_threads(write, threads=1))
    first = asyncio.create_task(committer.submit(1))
    await asyncio.sleep(0)  # the first submission queues and schedules the drainer
    second = asyncio.create_task(committer.submit(2))
    assert await asyncio.gather(first, second) == [1, 2]
    assert writes == [[1, 2]]


async def test_a_drainer_that_finds_the_queue_taken_writes_nothing() -> None:
    """Two submissions start two drainers (PostgreSQL's setting); the first takes both, and the
    second opens no empty transaction."""
    writes: list[list[int]] = []

    def write(items: Sequence[int]) -> list[int]:
        writes.append(list(items))
        return list(items)

    # Written at once on the loop (`write_now`), so every write is in `writes` when gather ends.
    committer: GroupCommitter[int, int] = GroupCommitter(
        on_writer_threads(write, threads=2, write_now=write), concurrency=2
    )
    assert await asyncio.gather(committer.submit(1), committer.submit(2)) == [1, 2]
    assert writes == [[1, 2]]
