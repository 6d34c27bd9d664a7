"""The alert for one downvote: head, the user text, a trace link and the triage controls.

Pure functions from stored data to Block Kit, within Slack's limits: whatever text does not fit
the parent message follows in its thread (`bot.alerts.splitting`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.alerts.controls import group_blocks, triage_blocks
from bot.alerts.redaction import Redactor
from bot.alerts.splitting import allocate, field_need, render_field, text_fields
from bot.slack.blocks import Block, actions, button, context, header, section
from bot.slack.ids import ActionId, BlockId
from bot.slack.limits import BLOCKS_TEXT_BUDGET, URL, blocks_text_size, truncate
from bot.slack.mrkdwn import escape, inline, one_line, slack_date
from storage.events import EventView
from storage.groups import GroupView
from storage.triage import UNTOUCHED, TriageSnapshot

# The triage controls and the group's lines change after posting, but the split of the text must
# not (replies are resumed by number after a restart): the text gets what is left after this.
CONTROLS_RESERVE = 6_000
FALLBACK_TEXT_CHARS = 300
METADATA_ID_CHARS = 128
EVENT_TYPE = "downvote_alert"
REPLY_EVENT_TYPE = "downvote_alert_part"


@dataclass(frozen=True)
class AlertMessage:
    """One alert: the parent message plus the thread replies that carry the rest of the text."""

    text: str
    blocks: list[Block]
    replies: list[str]
    metadata: dict[str, Any]


def alert_message(
    event: EventView,
    *,
    triage: TriageSnapshot = UNTOUCHED,
    categories: Sequence[str],
    redactor: Redactor,
    group: GroupView | None = None,
) -> AlertMessage:
    """Build the alert (parent blocks, thread replies, metadata) for one downvote, or for the
    group it heads ("seen N times", back after being resolved, suggested categories)."""
    head = _head_blocks(event, redactor)
    trace = _trace_blocks(event)
    content_budget = BLOCKS_TEXT_BUDGET - CONTROLS_RESERVE - blocks_text_size([*head, *trace])
    sections, replies = _field_sections(event, redactor, content_budget)
    return AlertMessage(
        text=_fallback_text(event, redactor),
        blocks=[
            *head,
            *sections,
            *trace,
            # What changes after posting (group, triage) comes last, within CONTROLS_RESERVE.
            *group_blocks(event.id, group, triage),
            *triage_blocks(event.id, triage, categories),
        ],
        replies=replies,
        metadata=alert_metadata(event),
    )


def alert_metadata(event: EventView) -> dict[str, Any]:
    """Message metadata that lets listeners and history scans find the event behind a message."""
    external_id = event.external_id[:METADATA_ID_CHARS]  # metadata must stay small
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"event_id": event.id, "external_id": external_id},
    }


def member_message(event: EventView, *, redactor: Redactor) -> AlertMessage:
    """A later member of a group, posted into the group's thread: its own comment, prompt and
    response (the whole text, the rest in further replies), without the triage controls."""
    head = [
        section("*Another downvote like this one*", verbatim=True),
        context(_meta_elements(event, redactor)),
    ]
    sections, replies = _field_sections(
        event, redactor, BLOCKS_TEXT_BUDGET - blocks_text_size(head)
    )
    return AlertMessage(
        text=_fallback_text(event, redactor),
        blocks=[*head, *sections],
        replies=replies,
        metadata=alert_metadata(event),
    )


def _field_sections(
    event: EventView, redactor: Redactor, budget: int
) -> tuple[list[Block], list[str]]:
    """The comment, prompt and response as sections sharing `budget` characters; what does
    not fit goes, whole, into thread replies."""
    fields = text_fields(event, redactor)
    budgets = allocate([field_need(field) for field in fields], budget)
    sections: list[Block] = []
    replies: list[str] = []
    for field, part_budget in zip(fields, budgets, strict=True):
        parent_text, field_replies = render_field(field, parent_budget=part_budget)
        sections.append(section(parent_text, block_id=field.block_id.value))
        replies.extend(field_replies)
    return sections, replies


def reply_metadata(event_id: int, part: int) -> dict[str, Any]:
    """Metadata of a thread reply: which part of which alert, so a resumed thread skips it."""
    return {"event_type": REPLY_EVENT_TYPE, "event_payload": {"event_id": event_id, "part": part}}


def reply_blocks(reply: str) -> list[Block]:
    """Blocks for posting one thread reply (verbatim, so nothing in it is auto-linked)."""
    return [section(reply)]


def _head_blocks(event: EventView, redactor: Redactor) -> list[Block]:
    header_raw = f"👎 {one_line(redactor.redact(event.app)) or 'unnamed app'}"
    if event.feature:
        header_raw += f" · {one_line(redactor.redact(event.feature))}"
    return [header(escape(header_raw)), context(_meta_elements(event, redactor))]


def _meta_elements(event: EventView, redactor: Redactor) -> list[str]:
    elements: list[str] = []
    if event.model:
        elements.append(f"*Model:* {inline(redactor.redact(event.model))}")
    if event.latency_ms is not None:
        elements.append(f"*Latency:* {event.latency_ms:,.0f} ms")
    if event.confidence is not None:
        elements.append(f"*Confidence:* {event.confidence:.2f}")
    if event.user_id:
        elements.append(f"*User:* {inline(redactor.redact(event.user_id))}")
    elements.append(slack_date(event.occurred_at))
    elements.append(f"*Event:* {inline(event.external_id)}")
    if event.trace_url and not _is_link(event.trace_url):
        elements.append(f"*Trace:* {inline(redactor.redact(event.trace_url))}")
    return elements


def _fallback_text(event: EventView, redactor: Redactor) -> str:
    """Short notification text (push, unread list); the blocks carry the real content."""
    text = f"👎 {event.app}"
    if event.feature:
        text += f" · {event.feature}"
    if event.comment:
        text += f": {event.comment}"
    return truncate(escape(one_line(redactor.redact(text))), FALLBACK_TEXT_CHARS)


def _trace_blocks(event: EventView) -> list[Block]:
    if not (event.trace_url and _is_link(event.trace_url)):
        return []
    trace = button("Open trace", ActionId.OPEN_TRACE, str(event.id))
    trace["url"] = event.trace_url
    return [actions(BlockId.TRACE.value, [trace])]


def _is_link(url: str) -> bool:
    """A trace URL Slack accepts on a button: http(s), no spaces, within the length limit."""
    if len(url) > URL or any(char.isspace() for char in url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
