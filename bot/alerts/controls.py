"""The triage part of the alert (picker, buttons, state line): what every later update changes."""

from __future__ import annotations

import hashlib
import json
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
from bot.slack.limits import BUTTON_VALUE, MAX_OPTIONS, blocks_text_size, truncate
from bot.slack.mrkdwn import escape, inline, mention, message_link, one_line, slack_date
from storage.groups import EarlierGroup, GroupView
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


def group_blocks(event_id: int, group: GroupView | None, triage: TriageSnapshot) -> list[Block]:
    """What a group's alert says beyond one downvote: it is back after being resolved, and the
    categories earlier look-alikes were given, each a click away (never applied unasked)."""
    if group is None:
        return []
    lines: list[str] = []
    if group.size > 1:
        lines.append(f"*Seen {group.size:,} times* · last {slack_date(group.last_seen_at)}")
    if group.previous is not None:
        lines.append(_back_line(group.previous))
    offered = [(name, count) for name, count in group.suggestion if name not in triage.categories]
    offered = [(name, count) for name, count in offered if usable_category(name)][:3]
    if offered:
        named = ", ".join(f"{escape(name)} ({count:,} similar downvote{'s' if count != 1 else ''})"
                          for name, count in offered)  # fmt: skip
        lines.append(f"*Suggested:* {truncate(named, STATE_CATEGORIES_CHARS)}")
    if not lines:
        return []
    blocks: list[Block] = [context(lines)]
    if offered:
        names = [name for name, _ in offered]
        apply = button(
            f"Apply {', '.join(names)}", ActionId.APPLY_CATEGORIES, _apply_value(event_id, names)
        )
        blocks.append(actions(control_block_id(BlockId.SUGGESTION, event_id, "s"), [apply]))
    return blocks


def _back_line(previous: EarlierGroup) -> str:
    when = f" on {slack_date(previous.resolved_at)}" if previous.resolved_at else ""
    who = f" by {_who(previous.resolved_by)}" if previous.resolved_by else ""
    line = f"🔁 *Back:* like a group resolved{when}{who}"
    if previous.channel_id and previous.ts:
        line += f" · <{message_link(previous.channel_id, previous.ts)}|the earlier alert>"
    return line


def _apply_value(event_id: int, names: Sequence[str]) -> str:
    """The button's value: the event and the categories to apply (within Slack's 2,000)."""
    kept: list[str] = []
    for name in names:
        if len(json.dumps({"e": event_id, "c": [*kept, name]})) > BUTTON_VALUE:
            break
        kept.append(name)
    return json.dumps({"e": event_id, "c": kept})
