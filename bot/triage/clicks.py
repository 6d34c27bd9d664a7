"""What a Slack click means, read from its payload: pure functions, no Slack, no database."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.slack.ids import STATUS_ASKED_BY, ActionId, BlockId, StatusButton, parse_block_id
from storage.states import TriageStatus


class NotOurs(ValueError):
    """The payload does not come from one of Downvote's alerts."""


@dataclass(frozen=True)
class CategoryClick:
    """What one click on the picker changed."""

    added: frozenset[str]
    removed: frozenset[str]


def event_id_of(action: Mapping[str, Any]) -> int:
    """The internal event id: a button's value, or (for the picker) its block id."""
    value = action.get("value")
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, str) and value.startswith("{"):  # an Apply button: {"e": id, "c": …}
        return _apply_payload(value)[0]
    try:
        _, event_id = parse_block_id(str(action.get("block_id", "")))
    except ValueError:
        event_id = None
    if event_id is None:
        raise NotOurs("this control does not name a Downvote event")
    return event_id


def intended_status(action: Mapping[str, Any]) -> TriageStatus:
    """The status a status button asks for: its label says what pressing it does."""
    label = str((action.get("text") or {}).get("text", ""))
    try:
        return STATUS_ASKED_BY[(ActionId(action["action_id"]), StatusButton(label))]
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


def category_click(action: Mapping[str, Any], message: Mapping[str, Any] | None) -> CategoryClick:
    """What this click changed: only that is applied, so a concurrent click keeps its own tags."""
    block, _ = parse_block_id(str(action.get("block_id", "")))
    if block is not BlockId.CATEGORIES:
        raise NotOurs("not the category picker")
    selected = _option_values(action.get("selected_options"))
    seen = categories_seen(message, str(action["block_id"]))
    return CategoryClick(added=selected - seen, removed=seen - selected)


def modal_event_id(view: Mapping[str, Any]) -> int:
    """The event a modal we opened is about (kept in its private_metadata)."""
    try:
        return int(json.loads(view.get("private_metadata") or "{}")["event_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise NotOurs("not a Downvote modal") from exc


def modal_text(view: Mapping[str, Any]) -> str:
    """What was typed into a one-field modal."""
    try:
        value = view["state"]["values"]["value"]["value"]["value"]
    except (KeyError, TypeError) as exc:
        raise NotOurs("not a Downvote modal") from exc
    return str(value or "")


def suggested_categories(action: Mapping[str, Any]) -> list[str]:
    """The categories an Apply button offers."""
    return _apply_payload(str(action.get("value", "")))[1]


def _apply_payload(value: str) -> tuple[int, list[str]]:
    try:
        payload = json.loads(value)
        return int(payload["e"]), [str(name) for name in payload["c"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise NotOurs("not a Downvote Apply button") from exc
