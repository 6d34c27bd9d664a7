"""Action ids, block ids and status-button labels of the alert: the contract between the
message builders and the listeners that receive clicks on what they built."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from storage.states import TriageStatus


class ActionId(StrEnum):
    """Interactive elements of the alert; every button's `value` is the internal event id."""

    CATEGORIES = "triage_categories"  # multi_static_select; option values are category names
    NEW_CATEGORY = "triage_new_category"
    RESOLVE = "triage_resolve"  # toggles: "Resolved" / "Reopen"
    NOT_MODEL_ISSUE = "triage_not_model_issue"  # "Not a model issue" / "Mark as model issue"
    ASSIGN_ME = "triage_assign_me"
    ADD_NOTE = "triage_add_note"
    APPLY_CATEGORIES = "triage_apply_categories"  # a suggestion's Apply; value: event, names
    # Link buttons still send a block_actions payload; a listener must ack it.
    OPEN_TRACE = "open_trace"


class BlockId(StrEnum):
    """Blocks of the alert; controls add the event id and a state revision (`control_block_id`)."""

    COMMENT = "alert_comment"
    PROMPT = "alert_prompt"
    RESPONSE = "alert_response"
    CORRECTION = "alert_correction"
    TRACE = "alert_trace"
    CATEGORIES = "triage_categories"
    CONTROLS = "triage_controls"
    STATE = "triage_state"
    SUGGESTION = "triage_suggestion"


class StatusButton(StrEnum):
    """A status button's label says what pressing it does, so a click carries its intent."""

    RESOLVE = "Resolved"
    REOPEN = "Reopen"
    NOT_MODEL_ISSUE = "Not a model issue"
    MODEL_ISSUE = "Mark as model issue"


STATUS_ASKED_BY: dict[tuple[ActionId, StatusButton], TriageStatus] = {
    (ActionId.RESOLVE, StatusButton.RESOLVE): TriageStatus.RESOLVED,
    (ActionId.RESOLVE, StatusButton.REOPEN): TriageStatus.ACKNOWLEDGED,
    (ActionId.NOT_MODEL_ISSUE, StatusButton.NOT_MODEL_ISSUE): TriageStatus.NOT_A_MODEL_ISSUE,
    (ActionId.NOT_MODEL_ISSUE, StatusButton.MODEL_ISSUE): TriageStatus.ACKNOWLEDGED,
}

_SEPARATOR = ":"


def control_block_id(block: BlockId, event_id: int, revision: str) -> str:
    """Give each state its own block id: Slack clients cache element state per block id."""
    return _SEPARATOR.join((block.value, str(event_id), revision))


def parse_block_id(block_id: str) -> tuple[BlockId, int | None]:
    """Return which block an action came from and, for controls, the event id it belongs to."""
    base, _, rest = block_id.partition(_SEPARATOR)
    block = BlockId(base)
    event_part = rest.partition(_SEPARATOR)[0]
    return block, int(event_part) if event_part.isdigit() else None


NOTE_EVENT_TYPE = "downvote_alert_note"  # the metadata of a triage note in an alert's thread


def note_metadata(event_id: int) -> dict[str, Any]:
    """Metadata of a note posted in an alert's thread: erasing the event finds it by this."""
    return {"event_type": NOTE_EVENT_TYPE, "event_payload": {"event_id": event_id}}
