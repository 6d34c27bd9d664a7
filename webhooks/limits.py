"""Request limits: body size, bodies held at once, and each app's events per minute.

They keep one misbehaving app from exhausting memory or starving the others. The counts live in
the process's memory: with `serve --workers N` each process counts on its own (an app may send
up to N times its limit in all), which bounds abuse without a database write per request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from starlette.requests import Request

from storage.clock import SYSTEM_CLOCK, Clock

DEFAULT_BODIES_IN_FLIGHT = 64


@dataclass(frozen=True)
class IngestLimits:
    """`[limits]` of downvote.toml, as the receiver needs them."""

    events_per_minute: int | None = None
    bodies_in_flight: int = DEFAULT_BODIES_IN_FLIGHT


class BodyTooLarge(Exception):
    """The body is over DOWNVOTE_MAX_BODY_BYTES."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the limit of {limit} bytes")


class TryLater(Exception):
    """Refused for now; `retry_after` (whole seconds) says when to try again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OverRateLimit(TryLater):
    """The app sent more events than its `events_per_minute` (answered 429)."""


class Busy(TryLater):
    """Too many request bodies in flight (answered 503)."""


async def read_limited_body(request: Request, limit: int) -> bytes:
    """Refuse by Content-Length when given, else stop reading as soon as the limit is passed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class BodiesInFlight:
    """Counts the requests holding a body; over the bound, the next is refused before reading.

    Used as `with bodies:` around a feedback request. Only touched from the event loop (the
    feedback routes are `async`), so a plain int suffices, and nothing is allocated per request.
    """

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.count = 0

    def __enter__(self) -> None:
        if self.count >= self.bound:
            raise Busy(f"too many requests in flight (over {self.bound}): try again shortly", 1)
        self.count += 1

    def __exit__(self, *_: object) -> None:
        self.count -= 1


class EventRate:
    """A token bucket per app: `per_minute` events a minute, a burst of up to a minute's worth.

    A batch takes one token per event. One larger than the whole bucket is let through when the
    bucket is full and leaves it in debt, so a big batch waits its turn instead of never passing.
    """

    def __init__(self, per_minute: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self.per_minute = per_minute
        self._per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[int, list[float]] = {}  # app id -> [tokens, monotonic time]

    def take(self, app_id: int, app_name: str, events: int) -> None:
        """Spend `events` tokens of the app's bucket, or raise OverRateLimit."""
        now = self._clock.monotonic()
        bucket = self._buckets.get(app_id)
        if bucket is None:
            bucket = self._buckets[app_id] = [float(self.per_minute), now]
        tokens = min(float(self.per_minute), bucket[0] + (now - bucket[1]) * self._per_second)
        bucket[1] = now
        needed = min(events, self.per_minute)
        if tokens < needed:
            bucket[0] = tokens
            wait = max(1, math.ceil((needed - tokens) / self._per_second))
            raise OverRateLimit(
                f"app {app_name!r} is over its limit of {self.per_minute} events per minute: "
                f"retry after {wait} s",
                wait,
            )
        bucket[0] = tokens - events
