"""Slack mrkdwn helpers: make user text inert, and render the few markup pieces we emit."""

from __future__ import annotations

import re
from datetime import UTC, datetime

ZWSP = "\u200b"

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ESCAPE_RE = re.compile("[&<>]")
_UNESCAPE_RE = re.compile("&(amp|lt|gt);")
_UNESCAPES = {"amp": "&", "lt": "<", "gt": ">"}
# Slack member ids: U… for users, W… for Enterprise Grid users (letters and digits only).
_USER_ID_RE = re.compile(r"[UW][A-Z0-9]{2,20}")
# A backtick followed by a backtick or by our own ZWSP gets a ZWSP after it (see defuse_fences).
_DEFUSE_RE = re.compile("`(?=[`" + ZWSP + "])")
_RESTORE_RE = re.compile("`" + ZWSP)


def escape(text: str) -> str:
    """Escape `&`, `<`, `>` so user text can never ping (`<!channel>`) or forge a link."""
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], text)


def unescape(text: str) -> str:
    """Undo `escape` (one pass, so `&amp;lt;` correctly becomes `&lt;`)."""
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES[m.group(1)], text)


def defuse_fences(text: str) -> str:
    """Make text safe inside a ``` fence: no two adjacent backticks, none at either end."""
    # A ZWSP goes after every backtick followed by a backtick or a ZWSP, counting the fence's own
    # backticks as neighbours at both ends. Reversible: in the result, a ZWSP right after a
    # backtick (or at the very start) is always one we inserted.
    return _DEFUSE_RE.sub("`" + ZWSP, "`" + text + "`")[1:-1]


def restore_fences(text: str) -> str:
    """Invert `defuse_fences` exactly."""
    return _RESTORE_RE.sub("`", "`" + text)[1:]


def code_block(text: str) -> str:
    """Render raw user text as an escaped ``` block that keeps line breaks and cannot be broken."""
    return "```" + escape(defuse_fences(text) or ZWSP) + "```"


def mention(user_id: str) -> str:
    """Mention a Slack member id; anything that is not one is shown as escaped text."""
    if _USER_ID_RE.fullmatch(user_id):
        return f"<@{user_id}>"
    return escape(user_id)


def slack_date(moment: datetime) -> str:
    """Show a time in each reader's own zone, with a UTC fallback (alone before 1970: no epoch)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    fallback = aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    unix = int(aware.timestamp())
    if unix < 0:
        return fallback
    return f"<!date^{unix}^{{date_short_pretty}} {{time}}|{fallback}>"
