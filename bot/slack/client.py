"""The Slack Web API client, with slack_sdk's own retry handlers."""

from __future__ import annotations

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.pacing import ChannelPacer, PacingRateLimitHandler

REQUEST_TIMEOUT_SECONDS = 15


def make_slack_client(
    token: str,
    base_url: str,
    *,
    retry_interval: RetryIntervalCalculator | None = None,
    pacer: ChannelPacer | None = None,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> AsyncWebClient:
    """A client that waits out 429 Retry-After (telling `pacer`) and retries 5xx and dropped
    connections a little.

    Longer outages are the outbox's job: it reschedules the alert with a persisted backoff.
    """
    interval = retry_interval or BackoffRetryIntervalCalculator(backoff_factor=0.5)
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=timeout,  # type: ignore[arg-type]  # annotated int; aiohttp takes float seconds
        retry_handlers=[
            PacingRateLimitHandler(pacer or ChannelPacer(), max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2, interval_calculator=interval),
            AsyncConnectionErrorRetryHandler(max_retry_count=2, interval_calculator=interval),
        ],
    )
