"""The triage part of the alert (picker, buttons, state line): what every later update changes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bot.slack.blocks import (
    Block,
    actions,
    button,
    category_option,
    context,
    divider,
    usable_category,
)
from bot.slack.ids import ActionId, BlockId, StatusButton, control_block_id
from bot.slack.limits import MAX_OPTIONS, blocks_text_size, truncate
from bot.slack.mrkdwn import escape, inline, mention, one_line, slack_date
from storage.states import TriageStatus
from storage.triage import TriageSnapshot

STATIC_PICKER_BUDGET = 2_500  # options and initial options of a static picker, all strings
INITIAL_OPTIONS_BUDGET = 3_000  # selected options shown by a searchable picker
STATE_CATEGORIES_CHARS = 600  # category list in the state line

STATUS_LABELS = {
    TriageStatus.NEW: "New",
    TriageStatus.ACKNOWLEDGED: "Acknowledged",
    TriageStatus.RESOLVED: "Resolved",
    TriageStatus.NOT_A_MODEL_ISSUE: "Not a model issue",
}


def triage_blocks(event_id: int, triage: TriageSnapshot, categories: Sequence[str]) -> list[Block]:
    """Divider, picker, buttons and state line, with block ids that change with the state."""
    revision = _revision(triage, categories)
    picker: list[Block] = []
    select = _category_select(triage.categories, categories)
    if select is not None:
        picker.append(select)
    picker.append(button("New category…", ActionId.NEW_CATEGORY, str(event_id)))
    state = context([_triage_state(triage)])
    state["block_id"] = BlockId.STATE.value
    return [
        divider(),
        actions(control_block_id(BlockId.CATEGORIES, event_id, revision), picker),
        actions(
            control_block_id(BlockId.CONTROLS, event_id, revision),
            _triage_buttons(event_id, triage),
        ),
        state,
    ]


def _triage_buttons(event_id: int, triage: TriageSnapshot) -> list[Block]:
    value = str(event_id)
    resolved = triage.status == TriageStatus.RESOLVED
    not_model = triage.status == TriageStatus.NOT_A_MODEL_ISSUE
    resolve = button(
        StatusButton.REOPEN if resolved else StatusButton.RESOLVE, ActionId.RESOLVE, value
    )
    if not resolved:
        resolve["style"] = "primary"
    label = StatusButton.MODEL_ISSUE if not_model else StatusButton.NOT_MODEL_ISSUE
    return [
        resolve,
        button(label, ActionId.NOT_MODEL_ISSUE, value),
        button("Assign to me", ActionId.ASSIGN_ME, value),
        button("Add note", ActionId.ADD_NOTE, value),
    ]


def _category_select(selected: Sequence[str], categories: Sequence[str]) -> Block | None:
    """A static picker while every category fits one; else a searchable (external) one.

    Slack repeats the selected options in `initial_options`, so both count against the
    message's text budget; an external select keeps the list itself out of the message.
    """
    usable = [name for name in dict.fromkeys([*categories, *selected]) if usable_category(name)]
    if not usable:
        return None
    chosen = [name for name in dict.fromkeys(selected) if usable_category(name)]
    static_cost = sum(map(_option_cost, usable)) + sum(map(_option_cost, chosen))
    if len(usable) <= MAX_OPTIONS and static_cost <= STATIC_PICKER_BUDGET:
        select: Block = {
            "type": "multi_static_select",
            "placeholder": {"type": "plain_text", "text": "Edge-case categories"},
            "options": [category_option(name) for name in usable],
        }
        initial = chosen
    else:
        select = {
            "type": "multi_external_select",
            "placeholder": {"type": "plain_text", "text": "Search edge-case categories"},
            "min_query_length": 0,  # opening the menu lists them all, selected first
        }
        initial = _within(chosen, INITIAL_OPTIONS_BUDGET)
    select["action_id"] = ActionId.CATEGORIES.value
    if initial:
        select["initial_options"] = [category_option(name) for name in initial]
    return select


def _within(names: Sequence[str], budget: int) -> list[str]:
    """As many names (in order) as fit `budget`; the state line still lists every one."""
    kept: list[str] = []
    for name in names:
        budget -= _option_cost(name)
        if budget < 0:
            break
        kept.append(name)
    return kept


def _option_cost(name: str) -> int:
    return blocks_text_size([category_option(name)])


def _triage_state(triage: TriageSnapshot) -> str:
    """One line: categories, status, assignee, who acted last and when, notes."""
    names = one_line(", ".join(triage.categories))
    names = truncate(escape(names), STATE_CATEGORIES_CHARS) if names else "none"
    status = STATUS_LABELS.get(triage.status) or inline(triage.status)
    parts = [f"*Categories:* {names}", f"*Status:* {status}"]
    parts.append(f"*Assigned:* {_who(triage.assignee) if triage.assignee else 'nobody'}")
    if triage.last_actor:
        by = f"by {_who(triage.last_actor)}"
        if triage.last_action_at is not None:
            by += f" at {slack_date(triage.last_action_at)}"
        parts.append(by)
    if triage.notes:
        parts.append(f"*Notes:* {triage.notes}")
    return " · ".join(parts)


def _who(user_id: str) -> str:
    """A Slack member as a mention; anything else as short escaped text."""
    return mention(user_id) if mention(user_id).startswith("<@") else inline(user_id)


def _revision(triage: TriageSnapshot, categories: Sequence[str]) -> str:
    """Short digest of what the controls show: a new block id per state defeats client caching."""
    state = repr((triage, tuple(categories))).encode("utf-8", errors="surrogatepass")
    return hashlib.blake2s(state, digest_size=4).hexdigest()
