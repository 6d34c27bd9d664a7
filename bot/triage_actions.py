"""What a Slack click means, read from its payload: pure functions, no Slack, no database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.actions import ActionId, BlockId, parse_block_id
from storage.triage import ACKNOWLEDGED, NOT_A_MODEL_ISSUE, RESOLVED

# The label on a status button says what pressing it does (see bot.blocks._triage_buttons).
STATUS_BY_LABEL = {
    (ActionId.RESOLVE, "Resolved"): RESOLVED,
    (ActionId.RESOLVE, "Reopen"): ACKNOWLEDGED,
    (ActionId.NOT_MODEL_ISSUE, "Not a model issue"): NOT_A_MODEL_ISSUE,
    (ActionId.NOT_MODEL_ISSUE, "Mark as model issue"): ACKNOWLEDGED,
}


class NotOurs(ValueError):
    """The payload does not come from one of Downvote's alerts."""


@dataclass(frozen=True)
class CategoryChange:
    added: frozenset[str]
    removed: frozenset[str]


def event_id_of(action: Mapping[str, Any]) -> int:
    """The internal event id: a button's value, or (for the picker) its block id."""
    value = action.get("value")
    if isinstance(value, str) and value.isdigit():
        return int(value)
    try:
        _, event_id = parse_block_id(str(action.get("block_id", "")))
    except ValueError:
        event_id = None
    if event_id is None:
        raise NotOurs("this control does not name a Downvote event")
    return event_id


def intended_status(action: Mapping[str, Any]) -> str:
    label = str((action.get("text") or {}).get("text", ""))
    try:
        return STATUS_BY_LABEL[(ActionId(action["action_id"]), label)]
    except (KeyError, ValueError):
        raise NotOurs(f"unknown status button {label!r}") from None


def _option_values(options: Any) -> frozenset[str]:
    return frozenset(str(o["value"]) for o in options or [] if isinstance(o, dict) and "value" in o)


def categories_seen(message: Mapping[str, Any] | None, block_id: str) -> frozenset[str]:
    """The categories the clicker saw selected: the picker's initial options in their copy."""
    for block in (message or {}).get("blocks", []):
        if block.get("block_id") != block_id:
            continue
        for element in block.get("elements", []):
            if element.get("action_id") == ActionId.CATEGORIES:
                return _option_values(element.get("initial_options"))
    return frozenset()


def category_change(action: Mapping[str, Any], message: Mapping[str, Any] | None) -> CategoryChange:
    """What this click changed: only that is applied, so a concurrent click keeps its own tags."""
    block, _ = parse_block_id(str(action.get("block_id", "")))
    if block is not BlockId.CATEGORIES:
        raise NotOurs("not the category picker")
    selected = _option_values(action.get("selected_options"))
    seen = categories_seen(message, str(action["block_id"]))
    return CategoryChange(added=selected - seen, removed=seen - selected)
