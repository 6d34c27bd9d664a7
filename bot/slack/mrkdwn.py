"""Slack mrkdwn helpers: make user text inert, and render the few pieces we emit (code blocks,
mentions, dates, durations, message links)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.slack.limits import truncate

ZWSP = "\u200b"
INLINE_CHARS = 200  # a model, a user id, an app name… shown in a line of text

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ESCAPE_RE = re.compile("[&<>]")
_UNESCAPE_RE = re.compile("&(amp|lt|gt);")
_UNESCAPES = {"amp": "&", "lt": "<", "gt": ">"}
# Slack member ids: U… for users, W… for Enterprise Grid users (letters and digits only).
_USER_ID_RE = re.compile(r"[UW][A-Z0-9]{2,20}")
# A backtick followed by a backtick or by our own ZWSP gets a ZWSP after it (see defuse_fences).
_DEFUSE_RE = re.compile("`(?=[`" + ZWSP + "])")


def escape(text: str) -> str:
    """Escape `&`, `<`, `>` so user text can never ping (`<!channel>`) or forge a link."""
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], text)


def unescape(text: str) -> str:
    """Undo `escape` (one pass, so `&amp;lt;` correctly becomes `&lt;`)."""
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES[m.group(1)], text)


def one_line(text: str) -> str:
    """Whitespace runs (line breaks included) as single spaces."""
    return " ".join(text.split())


def inline(text: str) -> str:
    """A short user value (model, user id, app…) escaped, on one line, cut to a sane length."""
    return truncate(escape(one_line(text)), INLINE_CHARS)


def defuse_fences(text: str) -> str:
    """Make text safe inside a ``` fence: no two adjacent backticks, none at either end."""
    # A ZWSP goes after every backtick followed by a backtick or a ZWSP, counting the fence's own
    # backticks as neighbours at both ends. Reversible: in the result, a ZWSP right after a
    # backtick (or at the very start) is always one we inserted.
    return _DEFUSE_RE.sub("`" + ZWSP, "`" + text + "`")[1:-1]


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


def duration(seconds: float) -> str:
    """A wait or a time to triage as people say it: 45 s, 12 min, 3 h 20 min, 4 d 2 h."""
    minutes = round(seconds / 60)
    if seconds < 60:
        return f"{round(seconds)} s"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def message_link(channel_id: str, ts: str) -> str:
    """The archive link Slack redirects to a message, without an API call."""
    return f"https://slack.com/archives/{channel_id}/p{ts.replace('.', '')}"
