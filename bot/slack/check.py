"""Is Slack set up the way Downvote needs it? The token, its scopes, and every channel in use.

Run by `downvote slack check` after connecting Slack, and by `serve` when it starts (which logs
the problems and serves anyway). Each problem comes with its fix, in one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import Gauge
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.channels import Channels, channel_fix, label
from bot.slack.errors import SLACK_CALL_ERRORS, ChannelProblem, failure_detail, failure_reason

# What each scope is for; slack-manifest.yml asks for exactly these (tests/test_manifest.py).
REQUIRED_SCOPES = {
    "chat:write": "post alerts, replies and summaries, and update them after triage",
    "chat:write.public": "post to public channels without being invited",
    "channels:read": "find a public channel's id from its name",
    "groups:read": "find a private channel's id once Downvote is invited",
    "channels:join": "join a public channel before reading it",
    "channels:history": "find what was posted before a crash, in public channels",
    "groups:history": "the same in private channels",
    "commands": "the /downvote command",
    "files:write": "share the weekly chart",
}
REINSTALL = "add it under OAuth & Permissions (or paste slack-manifest.yml again) and reinstall"
SLACK_PROBLEMS = Gauge(
    "downvote_slack_problems",
    "Problems the last Slack check found (token, scopes, channels): see the log or `slack check`",
)


@dataclass
class SlackReport:
    """What the check found: problems (each with its fix) and, when all is well, a summary."""

    problems: list[str] = field(default_factory=list)
    team: str = ""
    bot: str = ""
    channels: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        listed = ", ".join(self.channels) or "none configured (set SLACK_CHANNEL)"
        return f"Slack is ready: team {self.team}, bot {self.bot}; channels: {listed}"


async def check_slack(
    client: AsyncWebClient, channels: Channels, configured: Iterable[str]
) -> SlackReport:
    report = SlackReport()
    try:
        auth = await client.auth_test()
    except SLACK_CALL_ERRORS as exc:
        report.problems.append(
            f"SLACK_BOT_TOKEN does not work ({failure_detail(exc)}): copy the Bot User OAuth "
            "Token (xoxb-…) from OAuth & Permissions"
        )
        SLACK_PROBLEMS.set(len(report.problems))
        return report
    report.team, report.bot = str(auth.get("team")), f"@{auth.get('user')} ({auth.get('user_id')})"
    granted = set(re.split(r",\s*", str(auth.headers.get("x-oauth-scopes", "")))) - {""}
    for scope, purpose in REQUIRED_SCOPES.items():
        if scope not in granted:
            report.problems.append(f"missing scope {scope} (to {purpose}): {REINSTALL}")
    for channel in dict.fromkeys(configured):
        await _check_channel(client, channels, channel, report)
    SLACK_PROBLEMS.set(len(report.problems))
    return report


async def _check_channel(
    client: AsyncWebClient, channels: Channels, channel: str, report: SlackReport
) -> None:
    """Resolve the channel, join it if public, and read one message: what delivery will do."""
    shown = label(channel)
    try:
        channel_id = await channels.resolve(channel)
        await channels.as_member(
            channel_id, lambda: client.conversations_history(channel=channel_id, limit=1),
            shown_as=shown,
        )  # fmt: skip
    except ChannelProblem as problem:
        report.problems.append(f"{shown}: {problem.fix}")
        return
    except SlackApiError as exc:
        reason = failure_reason(exc)
        report.problems.append(f"{shown}: {channel_fix(shown, reason) or failure_detail(exc)}")
        return
    except SLACK_CALL_ERRORS as exc:
        report.problems.append(f"{shown}: Slack could not be asked ({failure_detail(exc)})")
        return
    report.channels.append(f"{shown} ({channel_id})")
