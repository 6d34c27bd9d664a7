"""What went wrong with a Slack call, and whether trying again can help."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError


class ChannelProblem(Exception):
    """A configured channel Downvote cannot use until a person acts (invite the bot, fix a name)."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}: {fix}")
        self.reason = reason
        self.fix = fix


# Everything a Slack call may raise once slack_sdk's own retries are spent: API errors, a
# refused upload URL (SlackRequestError), and aiohttp's own errors, which are not all OSErrors
# (ServerDisconnectedError, ClientPayloadError).
SLACK_CALL_ERRORS = (SlackClientError, aiohttp.ClientError, OSError, TimeoutError, ChannelProblem)

# Errors no retry can fix: the work waits for a person (`downvote alerts failed`).
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed",
        "account_inactive", "token_revoked", "token_expired", "no_permission", "missing_scope",
        "invalid_blocks", "invalid_blocks_format", "msg_too_long", "msg_blocks_too_long",
        "restricted_action", "no_channel", "not_allowed_token_type",
        "method_not_supported_for_channel_type",
    }
)  # fmt: skip


def failure_reason(error: BaseException) -> str:
    """Slack's error code (`channel_not_found`), else what kind of failure it was."""
    if isinstance(error, ChannelProblem):
        return error.reason
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or f"http_{error.response.status_code}")
    if isinstance(error, SlackClientError):
        return f"request: {type(error).__name__}"
    return f"connection: {type(error).__name__}"


def failure_detail(error: BaseException) -> str:
    """The reason, with what to do about it where we know."""
    if isinstance(error, ChannelProblem):
        return str(error)
    reason = failure_reason(error)
    if reason == "missing_scope" and isinstance(error, SlackApiError):
        needed = error.response.get("needed")
        return f"missing_scope: add {needed} to the app (slack-manifest.yml) and reinstall it"
    return reason


def is_permanent(reason: str) -> bool:
    return reason in PERMANENT_ERRORS
