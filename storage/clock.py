"""The time, as every part of Downvote reads it: one object, passed in, so tests can set it.

`now()` is the wall clock (aware, UTC) for what is stored and scheduled; `monotonic()` and
`sleep()` measure and wait (pacing, reload intervals). Production uses `SYSTEM_CLOCK`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
