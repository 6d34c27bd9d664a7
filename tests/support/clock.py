"""One clock a test sets and moves: the service, the fake Slack and the pacer all read it."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class FakeClock:
    """A `storage.clock.Clock` that moves only when told to (or when someone sleeps on it)."""

    def __init__(self, at: datetime = START, monotonic: float = 1_000.0) -> None:
        if at.tzinfo is None:
            raise ValueError("a FakeClock starts at an aware time")
        self._lock = threading.Lock()
        self._now = at.astimezone(UTC)
        self._monotonic = monotonic

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._monotonic += seconds

    def set(self, at: datetime) -> None:
        """Jump to `at` (forward only: monotonic time never goes back)."""
        with self._lock:
            step = (at - self._now).total_seconds()
            if step < 0:
                raise ValueError("a clock does not go back")
            self._now, self._monotonic = at.astimezone(UTC), self._monotonic + step

    async def sleep(self, seconds: float) -> None:
        """Sleeping takes no real time: the clock moves on, and other tasks get their turn."""
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)
