"""The triage part of the alert (picker, buttons, state line): what every later update changes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bot.slack.blocks import Block, actions, button, context, divider
from bot.slack.ids import ActionId, BlockId, StatusButton, control_block_id
from bot.slack.limits import MAX_OPTIONS, OPTION_TEXT, OPTION_VALUE, slack_len, truncate
from bot.slack.mrkdwn import escape, inline, mention, one_line, slack_date
from storage.states import TriageStatus
from storage.triage import TriageSnapshot

OPTIONS_TEXT_BUDGET = 2_500  # picker options (text, value, type), selected ones first
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
    names = _picker_names(selected, categories)
    if not names:
        return None
    options = {name: _option(name) for name in names}
    select: Block = {
        "type": "multi_static_select",
        "action_id": ActionId.CATEGORIES.value,
        "placeholder": {"type": "plain_text", "text": "Edge-case categories"},
        "options": list(options.values()),
    }
    initial = [options[name] for name in dict.fromkeys(selected) if name in options]
    if initial:
        select["initial_options"] = initial
    return select


def _picker_names(selected: Sequence[str], categories: Sequence[str]) -> list[str]:
    """Options in configured order; selected ones always kept within Slack's 100 / our size cap."""
    usable = [name for name in dict.fromkeys([*categories, *selected]) if _usable_value(name)]
    chosen = set(selected)
    keep: set[str] = set()
    size = 0
    for name in sorted(usable, key=lambda name: name not in chosen):  # selected first, stable
        cost = slack_len(name) + slack_len(_option_text(name)) + len("plain_text")
        if len(keep) < MAX_OPTIONS and size + cost <= OPTIONS_TEXT_BUDGET:
            keep.add(name)
            size += cost
    return [name for name in usable if name in keep]


def _usable_value(name: str) -> bool:
    return 0 < len(name) <= OPTION_VALUE and bool(name.strip())


def _option(name: str) -> Block:
    return {"text": {"type": "plain_text", "text": _option_text(name)}, "value": name}


def _option_text(name: str) -> str:
    return truncate(escape(one_line(name)), OPTION_TEXT)


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
