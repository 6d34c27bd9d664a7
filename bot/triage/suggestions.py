"""The searchable category picker: Slack asks for options as the user types (block_suggestion).

An alert uses it when its categories do not all fit a static picker, so every category can be
found and picked, however many there are. The event's own categories come first.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from sqlalchemy.orm import Session

from bot.slack.blocks import category_option, usable_category
from bot.slack.ids import ActionId, parse_block_id
from bot.slack.limits import MAX_OPTIONS
from bot.triage.context import triage_of
from storage import triage


def matching_categories(query: str, selected: list[str], categories: list[str]) -> list[str]:
    """Categories containing what was typed (any case), the selected ones first, at most 100."""
    wanted = " ".join(query.lower().split())
    names = [name for name in dict.fromkeys([*selected, *categories]) if usable_category(name)]
    return [name for name in names if wanted in name.lower()][:MAX_OPTIONS]


async def suggest_categories(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
) -> None:
    triage_context = triage_of(context)
    try:
        _, event_id = parse_block_id(str(body.get("block_id", "")))
    except ValueError:
        event_id = None

    def read(session: Session) -> tuple[list[str], list[str]]:
        selected = list(triage.snapshot(session, event_id).categories) if event_id else []
        return selected, triage_context.categories(session)

    selected, categories = await triage_context.read(read)
    names = matching_categories(str(body.get("value", "")), selected, categories)
    await ack(options=[category_option(name) for name in names])


def register(app: AsyncApp) -> None:
    app.options(ActionId.CATEGORIES.value)(suggest_categories)
