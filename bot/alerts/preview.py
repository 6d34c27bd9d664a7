"""Preview mode: an alert shown on the console, and as a link to Slack's Block Kit Builder."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from bot.alerts.message import AlertMessage
from bot.slack.blocks import Block
from bot.slack.mrkdwn import ZWSP, unescape


def message_as_text(msg: AlertMessage) -> str:
    """Render an alert readably for the console (preview mode, no Slack token)."""
    lines = [_block_as_text(block) for block in msg.blocks]
    for number, reply in enumerate(msg.replies, start=1):
        lines.append(f"--- thread reply {number}/{len(msg.replies)} ---\n{reply}")
    return _plain("\n".join(line for line in lines if line))


def block_kit_builder_url(message: AlertMessage) -> str:
    """A link that opens the message in Slack's Block Kit Builder."""
    return "https://app.slack.com/block-kit-builder/#" + quote(
        json.dumps({"blocks": message.blocks}, separators=(",", ":"))
    )


_DATE_RE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_MENTION_RE = re.compile(r"<@([A-Z0-9]+)>")


def _block_as_text(block: Block) -> str:
    kind = block.get("type")
    if kind in ("header", "section"):
        return str(block["text"]["text"])
    if kind == "context":
        return " · ".join(str(element["text"]) for element in block["elements"])
    if kind == "divider":
        return "─" * 40
    if kind == "actions":
        return "  ".join(_element_as_text(element) for element in block["elements"])
    return ""


def _element_as_text(element: Block) -> str:
    if element.get("type") == "multi_static_select":
        chosen = {option["value"] for option in element.get("initial_options", [])}
        marks = (
            f"[{'x' if option['value'] in chosen else ' '}] {option['text']['text']}"
            for option in element["options"]
        )
        return "Categories: " + ", ".join(marks)
    label = f"[{element['text']['text']}]"
    return f"{label} {element['url']}" if "url" in element else label


def _plain(text: str) -> str:
    """Turn our mrkdwn back into readable console text (dates, mentions, entities, ZWSPs)."""
    text = _DATE_RE.sub(r"\1", text)
    text = _MENTION_RE.sub(r"@\1", text)
    return unescape(text).replace(ZWSP, "")
