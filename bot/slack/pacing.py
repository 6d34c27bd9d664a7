"""Per-channel pacing: once Slack rate-limits a channel, space posts to it instead of earning
a 429 (and slack_sdk's Retry-After-plus-jitter sleep) for every message.

Slack allows about one message per second per channel, with bursts. Downvote posts at full speed
until Slack says 429 for a channel, then paces that channel at one message per interval for a
cool-down period. slack_sdk's own rate-limit handler decides when to retry; this subclass tells
the pacer which channel was limited (the worker names it in a context var) and waits out the
Retry-After on the service's clock rather than on the event loop's own, so a test's clock rules
the fake Slack's rate limiter and the wait alike.
"""

from __future__ import annotations

import random
from contextvars import ContextVar
from typing import Any

from slack_sdk.http_retry.async_handler import RetryState
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse

from storage.clock import SYSTEM_CLOCK, Clock

# The channel of the Web API call in progress in this task, set by the delivery worker.
CURRENT_CHANNEL: ContextVar[str | None] = ContextVar("downvote_slack_channel", default=None)


class ChannelPacer:
    def __init__(
        self,
        interval: float = 1.05,  # a hair over Slack's 1 msg/s, so jitter does not earn a 429
        cooldown: float = 600.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.interval = interval
        self.cooldown = cooldown
        self.clock = clock
        self._paced_until: dict[str, float] = {}
        self._next_at: dict[str, float] = {}

    def rate_limited(self, channel: str, retry_after: float) -> None:
        now = self.clock.monotonic()
        self._paced_until[channel] = now + self.cooldown
        self._next_at[channel] = max(self._next_at.get(channel, now), now + retry_after)

    def is_paced(self, channel: str) -> bool:
        return self._paced_until.get(channel, 0.0) > self.clock.monotonic()

    async def wait_turn(self, channel: str) -> None:
        """Return when a post to `channel` may go out (at once, unless it was rate-limited)."""
        if not self.is_paced(channel):
            return
        wait = self._next_at.get(channel, 0.0) - self.clock.monotonic()
        if wait > 0:
            await self.clock.sleep(wait)

    def reserve(self, channel: str) -> float:
        """Hold the next free slot of the channel; how long until it comes. Callers at the same
        moment get slots one interval apart."""
        now = self.clock.monotonic()
        at = max(self._next_at.get(channel, now), now)
        self._next_at[channel] = at + self.interval
        return at - now

    async def take_turn(self, channel: str) -> None:
        """Wait for a held slot of the channel (see `reserve`)."""
        wait = self.reserve(channel)
        if wait > 0:
            await self.clock.sleep(wait)

    def posted(self, channel: str) -> None:
        """A post to `channel` just went through: the next one waits an interval from now."""
        if self.is_paced(channel):
            now = self.clock.monotonic()
            self._next_at[channel] = max(self._next_at.get(channel, now), now + self.interval)


class PacingRateLimitHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, which also reports the limited channel to the pacer."""

    def __init__(self, pacer: ChannelPacer, max_retry_count: int = 3) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.pacer = pacer

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:
            raise error  # type: ignore[misc]  # as slack_sdk's handler does
        retry_after = _retry_after(response.headers)
        channel = CURRENT_CHANNEL.get()
        state.next_attempt_requested = True
        if channel is None:
            # slack_sdk's own wait (Retry-After plus up to a second of jitter), on our clock.
            await self.pacer.clock.sleep(retry_after + random.random())
        else:
            # Posts that were in flight together retry one an interval apart, not together.
            self.pacer.rate_limited(channel, retry_after)
            await self.pacer.take_turn(channel)
        state.increment_current_attempt()


def _retry_after(headers: dict[str, Any]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                break
    return 1.0
