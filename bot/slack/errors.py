"""What went wrong with a Slack call, and whether trying again can help."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError

# Everything a Web API call may raise once slack_sdk's own retries are spent.
SLACK_CALL_ERRORS = (SlackApiError, aiohttp.ClientError, OSError, TimeoutError)

# Errors no retry can fix: the work waits for a person (`downvote alerts failed`).
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed",
        "account_inactive", "token_revoked", "token_expired", "no_permission", "missing_scope",
        "invalid_blocks", "invalid_blocks_format", "msg_too_long", "restricted_action",
        "no_channel",
    }
)  # fmt: skip


def failure_reason(error: BaseException) -> str:
    """Slack's error code (`channel_not_found`), else what kind of connection failure it was."""
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or f"http_{error.response.status_code}")
    return f"connection: {type(error).__name__}"


def is_permanent(reason: str) -> bool:
    return reason in PERMANENT_ERRORS
