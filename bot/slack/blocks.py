"""Small Block Kit builders shared by every message Downvote posts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.slack.limits import (
    BUTTON_TEXT,
    HEADER_TEXT,
    MAX_CONTEXT_ELEMENTS,
    OPTION_TEXT,
    OPTION_VALUE,
    truncate,
)
from bot.slack.mrkdwn import escape, one_line

Block = dict[str, Any]


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(text, HEADER_TEXT)}}


def section(text: str, *, block_id: str | None = None, verbatim: bool = True) -> Block:
    """A mrkdwn section; verbatim (the default) keeps Slack from auto-linking anything in it."""
    mrkdwn: Block = {"type": "mrkdwn", "text": text}
    if verbatim:
        mrkdwn["verbatim"] = True
    block: Block = {"type": "section", "text": mrkdwn}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def context(texts: Sequence[str], *, verbatim: bool = True) -> Block:
    elements = []
    for text in texts[:MAX_CONTEXT_ELEMENTS]:
        element: Block = {"type": "mrkdwn", "text": text}
        if verbatim:
            element["verbatim"] = True
        elements.append(element)
    return {"type": "context", "elements": elements}


def divider() -> Block:
    return {"type": "divider"}


def actions(block_id: str, elements: list[Block]) -> Block:
    return {"type": "actions", "block_id": block_id, "elements": elements}


def button(text: str, action_id: str, value: str) -> Block:
    """A button; `text` is plain text (Slack shows it as typed, so it needs no escaping)."""
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": truncate(text, BUTTON_TEXT)},
        "value": value,
    }


def category_option(name: str) -> Block:
    """An option whose value is the category itself; its label is the name on one line."""
    return {
        "text": {"type": "plain_text", "text": truncate(escape(one_line(name)), OPTION_TEXT)},
        "value": name,
    }


def usable_category(name: str) -> bool:
    """A category Slack can carry as an option value (1 to 150 characters, not blank)."""
    return 0 < len(name) <= OPTION_VALUE and bool(name.strip())
