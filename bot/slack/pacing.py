"""Per-channel pacing: once Slack rate-limits a channel, space posts to it instead of earning
a 429 (and slack_sdk's Retry-After-plus-jitter sleep) for every message.

Slack allows about one message per second per channel, with bursts. Downvote posts at full speed
until Slack says 429 for a channel, then paces that channel at one message per interval for a
cool-down period. slack_sdk's own rate-limit handler still does the waiting and retrying; this
subclass only tells the pacer which channel was limited (the worker names it in a context var).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from slack_sdk.http_retry.async_handler import RetryState
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse

# The channel of the Web API call in progress in this task, set by the delivery worker.
CURRENT_CHANNEL: ContextVar[str | None] = ContextVar("downvote_slack_channel", default=None)


class ChannelPacer:
    def __init__(
        self,
        interval: float = 1.05,  # a hair over Slack's 1 msg/s, so jitter does not earn a 429
        cooldown: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = interval
        self.cooldown = cooldown
        self._clock = clock
        self._sleep = sleep
        self._paced_until: dict[str, float] = {}
        self._next_at: dict[str, float] = {}

    def rate_limited(self, channel: str, retry_after: float) -> None:
        now = self._clock()
        self._paced_until[channel] = now + self.cooldown
        self._next_at[channel] = max(self._next_at.get(channel, now), now + retry_after)

    def is_paced(self, channel: str) -> bool:
        return self._paced_until.get(channel, 0.0) > self._clock()

    async def wait_turn(self, channel: str) -> None:
        """Return when a post to `channel` may go out (at once, unless it was rate-limited)."""
        if not self.is_paced(channel):
            return
        wait = self._next_at.get(channel, 0.0) - self._clock()
        if wait > 0:
            await self._sleep(wait)

    def posted(self, channel: str) -> None:
        """A post to `channel` just went through: the next one waits an interval from now."""
        if self.is_paced(channel):
            now = self._clock()
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
        channel = CURRENT_CHANNEL.get()
        if channel is not None and response is not None:
            self.pacer.rate_limited(channel, _retry_after(response.headers))
        await super().prepare_for_next_attempt_async(
            state=state, request=request, response=response, error=error
        )


def _retry_after(headers: dict[str, Any]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                break
    return 1.0
