"""Reading our mrkdwn back in tests: the exact inverse of `defuse_fences`."""

from __future__ import annotations

import re

from bot.slack.mrkdwn import ZWSP

_RESTORE_RE = re.compile("`" + ZWSP)


def restore_fences(text: str) -> str:
    """Invert `bot.slack.mrkdwn.defuse_fences` exactly."""
    return _RESTORE_RE.sub("`", "`" + text)[1:]
